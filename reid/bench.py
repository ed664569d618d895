"""Inference benchmark: model-only throughput of each optimised path against fp32 eager, in one run.

For every batch size, each variant (an :class:`~reid.optimize.OptimizeOptions` on torch, or an artifact
of another runtime that ``reid export`` writes into a temporary folder first) runs on the same input;
its embeddings are compared with fp32 eager's (minimum cosine over the batch, and the largest error
relative to the median distance between two different images, as ``reid export`` verifies) and its
calls are timed in interleaved rounds, so a neighbour's load or thermal drift hits every variant
alike. Throughput is the batch size over the fastest call; the report gives the load average before
and after, because numbers taken on a busy machine are not worth much whatever the statistic.
Decoding + preprocessing (JPEG bytes → uint8 tensors) is measured separately, with the number of decode
threads, so the bottleneck of the whole pipeline is visible.

Without ``weights`` the model is randomly initialised and its BatchNorm statistics are calibrated on the
sample images: with raw initial statistics all embeddings are nearly parallel and every cosine looks
perfect. The report also gives the largest cosine between two different images' fp32 embeddings, so
the numerical error of a variant can be read against the distance between people.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from reid.checkpoints import load_checkpoint, sha256_file
from reid.errors import ConfigError
from reid.export import SPECS, ExportDtype, ExportOptions, Format, export_model
from reid.export.verify import largest_distance, median_distance, synthetic_jpegs
from reid.models import DEFAULT_BACKBONE, ReIDModel, create_reid_model
from reid.optimize import Forward, OptimizeOptions, native_bf16_cpu, optimize_model
from reid.preprocess import PreprocessConfig, Preprocessor, normalize
from reid.runtimes import BatchProfile, find_artifact, open_artifact
from reid.runtimes.artifact import ArtifactManifest, read_artifact_manifest
from reid.runtimes.base import RUNTIMES, RuntimeName
from reid.zoo.resolve import resolve_weights

logger = logging.getLogger(__name__)

ModuleT = TypeVar("ModuleT", bound=nn.Module)

BASELINE = "fp32"
CPU_BATCH_SIZES = (1, 8, 32)
CUDA_BATCH_SIZES = (1, 8, 32, 256)
_FP32_EAGER = OptimizeOptions(channels_last=False)
_MIN_IMAGES = 8
_MAX_IMAGES = 64
_TABLE_HEADER = (
    f"{'variant':<18} {'batch':>5} {'img/s':>10} {'x fp32':>7} {'cos min':>9} {'rel err':>8} {'calls':>5} "
    f"{'1st call s':>10} {'% peak':>7}"
)
# A square GEMM's size and a 3×3 convolution's (batch, channels, side) that reach a machine's practical fp32
# peak: large enough to be compute bound, small enough to take a few hundredths of a second on 2 CPU cores.
_PEAK_SHAPES = {"cpu": (1024, (8, 256, 32)), "cuda": (8192, (64, 512, 64))}
_FORMATS: dict[RuntimeName, Format] = {spec.runtime: name for name, spec in SPECS.items()}
_NCHW = OptimizeOptions(channels_last=False)
_NCHW_GRAPHS = OptimizeOptions(channels_last=False, cuda_graphs=True)  # an artifact replayed from CUDA graphs


@dataclass(frozen=True)
class Variant:
    """An inference path: ``options`` on torch, or an artifact of ``runtime`` in ``precision`` (exported
    for the run, or a given ``artifact``)."""

    name: str
    options: OptimizeOptions
    runtime: RuntimeName = "torch"
    precision: ExportDtype = "fp32"
    artifact: Path | None = None

    def describe(self) -> str:
        if self.runtime == "torch":
            return self.options.describe()
        made = str(self.artifact) if self.artifact is not None else f"exported to {_FORMATS[self.runtime]}"
        graphs = ", CUDA graphs" if self.options.cuda_graphs else ""
        return f"{self.runtime} artifact ({made}), {self.precision}{graphs}"


# Variants are data: the baseline first, then one optimisation at a time, then the combinations.
CPU_VARIANTS = (
    Variant(BASELINE, _FP32_EAGER),
    Variant("channels_last", OptimizeOptions()),
    Variant("fold_bn", OptimizeOptions(fold_bn=True)),
    Variant("bf16", OptimizeOptions(dtype=torch.bfloat16)),
    Variant("compile", OptimizeOptions(compile=True)),
    Variant("bf16+compile", OptimizeOptions(dtype=torch.bfloat16, compile=True)),
    Variant("onnxruntime", _NCHW, "onnxruntime"),
    Variant("openvino", _NCHW, "openvino"),
    Variant("openvino-bf16", _NCHW, "openvino", "bf16"),
)
CUDA_VARIANTS = (
    Variant(BASELINE, _FP32_EAGER),
    Variant("channels_last", OptimizeOptions()),
    Variant("fp16", OptimizeOptions(dtype=torch.float16)),
    Variant("bf16", OptimizeOptions(dtype=torch.bfloat16)),
    Variant("bf16+compile", OptimizeOptions(dtype=torch.bfloat16, compile=True)),
    Variant("bf16+graphs", OptimizeOptions(dtype=torch.bfloat16, cuda_graphs=True)),
    Variant("tensorrt-fp16", _NCHW, "tensorrt", "fp16"),
    Variant("tensorrt-fp16+graphs", _NCHW_GRAPHS, "tensorrt", "fp16"),
    Variant("tensorrt-bf16", _NCHW, "tensorrt", "bf16"),
)


def device_variants(device: torch.device) -> tuple[Variant, ...]:
    return CUDA_VARIANTS if device.type == "cuda" else CPU_VARIANTS


def _default_on(variant: Variant, device: torch.device) -> bool:
    """Whether a default run measures ``variant``: compiling emulated bf16 on a CPU without native bf16
    costs minutes to learn what eager bf16 already shows (it is slower than fp32), so it is opt-in; an
    OpenVINO bf16 artifact cannot even be exported (verified) there."""
    if device.type != "cpu" or native_bf16_cpu():
        return True
    emulated_bf16 = variant.options.dtype == torch.bfloat16 and variant.options.compile
    return not (emulated_bf16 or (variant.runtime == "openvino" and variant.precision == "bf16"))


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What to measure. ``None`` batch sizes / variants / decode threads mean the device's defaults
    (1/8/32, plus 256 on CUDA; every variant; 1 thread and one per CPU core). ``runtimes``: whose
    variants run (default torch only; the fp32 eager baseline always runs). ``min_time`` is the
    timed seconds per variant and batch size, spread over ``rounds`` interleaved rounds."""

    preset: str = DEFAULT_BACKBONE
    weights: str | None = None
    height: int = 256
    width: int = 128
    batch_sizes: tuple[int, ...] | None = None
    variants: tuple[str, ...] | None = None
    runtimes: tuple[str, ...] = ("torch",)
    min_time: float = 2.0
    rounds: int = 3
    device: str = "auto"
    decode_threads: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise ConfigError(f"batch sizes must be positive, got {self.batch_sizes}")
        if self.decode_threads is not None and (not self.decode_threads or min(self.decode_threads) < 1):
            raise ConfigError(f"decode threads must be positive, got {self.decode_threads}")
        unknown = set(self.runtimes) - set(RUNTIMES)
        if unknown or not self.runtimes:
            raise ConfigError(f"runtimes must be among {', '.join(RUNTIMES)}, got {self.runtimes}")
        if self.min_time <= 0 or self.rounds < 1:
            raise ConfigError(f"need min_time > 0 and rounds >= 1, got {self.min_time}, {self.rounds}")

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r} requested but CUDA is not available")
        return device

    def resolve_batch_sizes(self, device: torch.device) -> tuple[int, ...]:
        if self.batch_sizes is not None:
            return tuple(sorted(set(self.batch_sizes)))
        return CUDA_BATCH_SIZES if device.type == "cuda" else CPU_BATCH_SIZES

    def resolve_variants(self, device: torch.device) -> tuple[Variant, ...]:
        """The chosen variants of the chosen runtimes in the device's order, always with the fp32 baseline
        first."""
        known = device_variants(device)
        if self.variants is None:
            chosen = tuple(v for v in known if _default_on(v, device))
        else:
            unknown = set(self.variants) - {v.name for v in known}
            if unknown:
                names = ", ".join(v.name for v in known)
                raise ConfigError(f"unknown variant(s) {sorted(unknown)} on {device.type}; valid: {names}")
            chosen = tuple(v for v in known if v.name == BASELINE or v.name in self.variants)
        return tuple(v for v in chosen if v.name == BASELINE or v.runtime in self.runtimes)

    def resolve_decode_threads(self) -> tuple[int, ...]:
        if self.decode_threads is not None:
            return tuple(sorted(set(self.decode_threads)))
        return tuple(sorted({1, os.cpu_count() or 1}))


@dataclass(frozen=True)
class ModelResult:
    variant: str
    batch_size: int
    images_per_s: float
    ratio: float
    cosine_min: float
    relative_error: float
    calls: int
    first_call_s: float


@dataclass(frozen=True)
class DecodeResult:
    threads: int
    images_per_s: float
    source_size: tuple[int, int]


@dataclass(frozen=True)
class BenchReport:
    device: str
    cpu_capability: str
    native_bf16: bool
    torch_threads: int
    load_average: tuple[float, float]
    preset: str
    weights: str
    input_size: tuple[int, int]
    variants: dict[str, str]
    inter_image_cosine_max: float
    gflop_per_image: float
    fp32_peak_gflops: float
    model: list[ModelResult] = field(default_factory=list)
    decode: list[DecodeResult] = field(default_factory=list)

    def percent_of_peak(self, result: ModelResult) -> float:
        """The model's arithmetic rate in ``result`` as a share of the machine's practical fp32 peak."""
        return 100 * result.images_per_s * self.gflop_per_image / self.fp32_peak_gflops

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        h, w = self.input_size
        before, after = self.load_average
        lines = [
            f"device {self.device} ({self.cpu_capability}, native bf16: {self.native_bf16}, "
            f"{self.torch_threads} torch threads, load average {before:.1f} before / {after:.1f} after); "
            f"model {self.preset} at {h}x{w}, {self.weights}",
            *(f"  {name:<18} {desc}" for name, desc in self.variants.items()),
            _TABLE_HEADER,
        ]
        lines += [
            f"{r.variant:<18} {r.batch_size:>5} {r.images_per_s:>10.1f} {r.ratio:>7.2f} "
            f"{r.cosine_min:>9.6f} {r.relative_error:>8.1e} {r.calls:>5} {r.first_call_s:>10.2f} "
            f"{self.percent_of_peak(r):>7.1f}"
            for r in self.model
        ]
        closest = self.inter_image_cosine_max
        lines.append(
            f"(largest cosine between two different images' fp32 embeddings: {closest:.4f}; rel err: largest "
            "distance to fp32 eager / median distance between two different images, as reid export checks)"
        )
        lines.append(
            f"(% peak: the model's {self.gflop_per_image:.2f} GFLOP per image at that rate, as a share of "
            f"this machine's practical fp32 peak, {self.fp32_peak_gflops:,.0f} GFLOP/s: its fastest large "
            "fp32 matrix product or 3x3 convolution)"
        )
        for d in self.decode:
            sh, sw = d.source_size
            lines.append(
                f"decode+preprocess: {d.images_per_s:,.1f} img/s with {d.threads} thread(s) "
                f"({sh}x{sw} JPEG → {h}x{w} uint8)"
            )
        return "\n".join(lines)


def calibrate_batchnorm(model: ModuleT, batches: Iterable[torch.Tensor]) -> ModuleT:
    """A copy of ``model`` in eval mode whose BatchNorm running statistics are the plain average of the
    per-batch statistics over ``batches`` (exact batch statistics for a single batch); all else unchanged."""
    calibrated = copy.deepcopy(model)
    norms = [m for m in calibrated.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average instead of an exponential one
    calibrated.train()
    with torch.no_grad():
        for batch in batches:
            calibrated(batch)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return calibrated.eval()


def gflop_per_image(model: nn.Module, preprocess: PreprocessConfig) -> float:
    """Floating-point operations of one image's forward (a multiply-add counts two), in GFLOP."""
    x = torch.zeros((1, 3, preprocess.height, preprocess.width))
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        copy.deepcopy(model).eval().float().cpu()(x)
    return counter.get_total_flops() / 1e9


def fp32_peak_gflops(device: torch.device, *, repeats: int = 5) -> float:
    """The practical fp32 peak of ``device`` in GFLOP/s: the faster of a large square matrix product and a
    large 3×3 convolution (channels_last), TF32 off. Both, because the BLAS may not be the fastest library
    on a CPU (MKL leaves AVX-512 unused on AMD CPUs, where oneDNN's convolutions use it)."""
    gemm, (batch, channels, side) = _PEAK_SHAPES[device.type]
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand((gemm, gemm), generator=generator).to(device) for _ in range(2))
    x = torch.rand((batch, channels, side, side), generator=generator).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.rand((channels, channels, 3, 3), generator=generator).to(device)
    kernels = (  # (FLOP per call, function, argument)
        (2 * gemm**3, partial(torch.mm, a), b),
        (2 * batch * channels * channels * 9 * side * side, partial(F.conv2d, weight=w, padding=1), x),
    )
    sync = _synchronize(device)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode(), _cudnn_benchmark(device):
            rates = []
            for flop, kernel, arg in kernels:
                kernel(arg)  # warm-up: threads, algorithm choice
                best = min(_seconds(kernel, arg, sync) for _ in range(repeats))
                rates.append(flop / best / 1e9)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return max(rates)


def min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Smallest row-wise cosine similarity between two (N, D) feature sets, computed in float64."""
    return float(F.cosine_similarity(a.double(), b.double(), dim=1).min())


def max_cross_cosine(features: torch.Tensor) -> float:
    """Largest cosine between two different rows (different images); -inf for a single row."""
    unit = F.normalize(features.double(), dim=1)
    sims = unit @ unit.T
    sims.fill_diagonal_(-float("inf"))
    return float(sims.max())


def _no_sync() -> None:
    pass


def _synchronize(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else _no_sync


def _timed_call(forward: Callable[[Any], Any], x: Any, sync: Callable[[], None]) -> tuple[Any, float]:
    sync()
    start = time.perf_counter()
    out = forward(x)
    sync()
    return out, time.perf_counter() - start


def _seconds(forward: Callable[[Any], Any], x: Any, sync: Callable[[], None]) -> float:
    return _timed_call(forward, x, sync)[1]


def time_interleaved(
    calls: dict[str, Callable[[], float]], *, min_time: float, rounds: int
) -> dict[str, list[float]]:
    """Run each timed call (returning its seconds) in ``rounds`` round-robin rounds, each call repeated
    within a round until it has run ``min_time / rounds`` seconds there. Returns the durations per name."""
    durations: dict[str, list[float]] = {name: [] for name in calls}
    share = min_time / rounds
    for _ in range(rounds):
        for name, call in calls.items():
            spent = 0.0
            while spent < share:
                seconds = call()
                durations[name].append(seconds)
                spent += seconds
    return durations


def _throughput(batch_size: int, durations: Sequence[float]) -> float:
    # The fastest call: other processes can only slow a call down, so on a shared machine the minimum
    # is the steadiest estimate of what the path itself costs.
    return batch_size / min(durations)


def _batches(images: torch.Tensor, size: int) -> torch.Tensor:
    """The first ``size`` sample images, repeating the set when asked for more than it holds."""
    reps = -(-size // images.shape[0])
    return images.repeat(reps, 1, 1, 1)[:size]


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick the fastest convolution algorithm per shape (the serving engine should too)."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda" or previous
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _load_model(
    config: BenchConfig, weights: Path | None, input_size: tuple[int, int]
) -> tuple[ReIDModel, PreprocessConfig, str, str]:
    """(model in eval mode, its preprocessing, its name, where its weights come from)."""
    if weights is not None:
        loaded = load_checkpoint(weights, input_size=input_size)
        return loaded.model, loaded.preprocess, loaded.config.backbone_name, f"weights {weights}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = create_reid_model(config.preset).eval()
    preprocess = PreprocessConfig(height=config.height, width=config.width)
    return model, preprocess, config.preset, f"random weights (seed {config.seed}), BatchNorm calibrated"


def _source_checkpoint(artifact: Path, manifest: ArtifactManifest) -> Path:
    """The checkpoint ``artifact`` was exported from, looked for beside it and one folder up (where
    ``reid export`` puts artifacts by default), recognised by its SHA-256."""
    for folder in (artifact.parent, artifact.parent.parent):
        candidate = folder / manifest.source_file
        if candidate.is_file() and sha256_file(candidate) == manifest.source_sha256:
            return candidate
    raise ConfigError(
        f"benchmarking {artifact.name} needs its source checkpoint {manifest.source_file} (the fp32 eager "
        "baseline) beside it or one folder up"
    )


def _given_artifact(path: Path, batch_sizes: Sequence[int]) -> tuple[Variant, Path, tuple[int, int]]:
    """The variant of an exported artifact given as ``--weights``, its source checkpoint and its input
    size (fixed by the artifact)."""
    manifest = read_artifact_manifest(path)
    profile = manifest.batch
    outside = [b for b in batch_sizes if not profile.min <= b <= profile.max]
    if outside:
        raise ConfigError(
            f"batch sizes {outside} are outside {path.name}'s profile {profile.min}..{profile.max}"
        )
    variant = Variant("artifact", _NCHW, manifest.runtime, manifest.dtype, artifact=path)
    size = (manifest.preprocess.height, manifest.preprocess.width)
    return variant, _source_checkpoint(path, manifest), size


def _artifact_forward(
    variant: Variant,
    model: ReIDModel,
    preprocess: PreprocessConfig,
    device: torch.device,
    folder: Path,
    max_batch: int,
    cleanup: contextlib.ExitStack,
) -> Forward:
    """Load ``variant``'s artifact, exporting ``model`` into ``folder`` first when it has none (once per
    runtime and precision: the variants with and without CUDA graphs share it). Written even if it fails
    verification (``force``): the table shows its error anyway."""
    path = (
        variant.artifact
        or folder / f"{variant.runtime}-{variant.precision}{SPECS[_FORMATS[variant.runtime]].suffix}"
    )
    if not path.exists():
        export_model(
            model,
            preprocess,
            path,
            ExportOptions(
                format=_FORMATS[variant.runtime],
                dtype=variant.precision,
                batch=BatchProfile(1, max_batch, max_batch),
                force=True,
            ),
            source_file="(benchmark model)",
            source_sha256="0" * 64,
            source_fingerprint="benchmark",
        )
    runtime, _ = open_artifact(path, device)
    cleanup.callback(runtime.close)
    if variant.options.cuda_graphs:
        runtime.use_cuda_graphs(max_batch)
    return runtime.forward


def bench_model(
    model: ReIDModel,
    images: torch.Tensor,
    preprocess: PreprocessConfig,
    variants: Sequence[Variant],
    batch_sizes: Sequence[int],
    *,
    device: torch.device,
    min_time: float,
    rounds: int,
) -> list[ModelResult]:
    """Measure every variant at every batch size; ``variants[0]`` is the baseline (ratio and cosine 1).

    The first call of each variant (compilation, cuDNN autotuning, allocator warm-up) is timed apart
    and gives the embeddings that are compared with the baseline's.
    """
    sync = _synchronize(device)
    results: list[ModelResult] = []
    progress = tqdm(total=len(batch_sizes) * len(variants), desc="model variants", unit="run", leave=False)
    with contextlib.ExitStack() as cleanup:
        folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="reid-bench-")))
        forwards = {
            v.name: optimize_model(model, v.options, device)
            if v.runtime == "torch"
            else _artifact_forward(v, model, preprocess, device, folder, max(batch_sizes), cleanup)
            for v in variants
        }
        with torch.inference_mode():
            between = median_distance(
                forwards[variants[0].name](normalize(images.to(device), preprocess)).cpu().numpy()
            )
        cleanup.enter_context(progress)
        cleanup.enter_context(torch.inference_mode())
        for batch_size in batch_sizes:
            uint8 = _batches(images, batch_size).to(device)
            inputs = {
                v.name: normalize(uint8, preprocess, channels_last=v.options.channels_last) for v in variants
            }
            cosines: dict[str, float] = {}
            errors: dict[str, float] = {}
            first_call: dict[str, float] = {}
            reference: torch.Tensor | None = None
            for v in variants:
                progress.set_postfix_str(f"{v.name} @ {batch_size} (first call)")
                out, first_call[v.name] = _timed_call(forwards[v.name], inputs[v.name], sync)
                # Compare now: a CUDA-graph replay may overwrite ``out`` later.
                reference = out.clone() if reference is None else reference
                cosines[v.name] = min_cosine(out, reference)
                errors[v.name] = largest_distance(reference.cpu().numpy(), out.cpu().numpy()) / between
                progress.update()
            progress.set_postfix_str(f"timing batch {batch_size}")
            durations = time_interleaved(
                {name: partial(_seconds, forward, inputs[name], sync) for name, forward in forwards.items()},
                min_time=min_time,
                rounds=rounds,
            )
            base = _throughput(batch_size, durations[variants[0].name])
            for v in variants:
                speed = _throughput(batch_size, durations[v.name])
                calls = len(durations[v.name])
                results.append(
                    ModelResult(
                        v.name,
                        batch_size,
                        speed,
                        speed / base,
                        cosines[v.name],
                        errors[v.name],
                        calls,
                        first_call[v.name],
                    )
                )
    return results


def bench_decode(
    jpegs: Sequence[bytes], preprocess: PreprocessConfig, threads: Iterable[int], *, min_time: float
) -> list[DecodeResult]:
    """Throughput of ``Preprocessor.prepare_batch`` (decode, RGB, resize, stack) per thread count."""
    with Image.open(io.BytesIO(jpegs[0])) as first:
        source_size = (first.height, first.width)
    results = []
    for count in threads:
        with Preprocessor(preprocess, workers=count) as pre:
            pre.prepare_batch(jpegs)  # start the threads
            durations = time_interleaved(
                {"decode": partial(_seconds, pre.prepare_batch, jpegs, _no_sync)},
                min_time=min_time,
                rounds=1,
            )
        results.append(DecodeResult(count, _throughput(len(jpegs), durations["decode"]), source_size))
    return results


def run_benchmark(config: BenchConfig) -> BenchReport:
    """The whole benchmark: model variants × batch sizes, then decode + preprocess."""
    load_before = os.getloadavg()[0]
    device = config.resolve_device()
    batch_sizes = config.resolve_batch_sizes(device)
    variants = config.resolve_variants(device)
    # A zoo name or URL: the cached download.
    checkpoint = resolve_weights(config.weights).path if config.weights is not None else None
    input_size = (config.height, config.width)
    artifact = find_artifact(checkpoint) if checkpoint is not None else None
    if artifact is not None:
        given, checkpoint, input_size = _given_artifact(artifact, batch_sizes)
        variants = (*variants, given)
    model, preprocess, name, weights = _load_model(config, checkpoint, input_size)
    # Enough distinct pictures for a meaningful calibration and cosine, bounded for big batches.
    count = min(max(*batch_sizes, _MIN_IMAGES), _MAX_IMAGES)
    jpegs = synthetic_jpegs(count, (preprocess.height, preprocess.width), seed=config.seed)
    with Preprocessor(preprocess) as pre:
        images = pre.prepare_batch(jpegs)
    if config.weights is None:
        model = calibrate_batchnorm(model, [normalize(images, preprocess)])
    with torch.inference_mode():
        fp32 = model(normalize(images[:_MIN_IMAGES], preprocess))
    logger.info(
        "benchmarking %s on %s: %s at batch sizes %s", name, device, [v.name for v in variants], batch_sizes
    )
    with _cudnn_benchmark(device):
        results = bench_model(
            model,
            images,
            preprocess,
            variants,
            batch_sizes,
            device=device,
            min_time=config.min_time,
            rounds=config.rounds,
        )
    decode = bench_decode(jpegs, preprocess, config.resolve_decode_threads(), min_time=config.min_time)
    return BenchReport(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        native_bf16=native_bf16_cpu(),
        torch_threads=torch.get_num_threads(),
        load_average=(load_before, os.getloadavg()[0]),
        preset=name,
        weights=weights,
        input_size=(preprocess.height, preprocess.width),
        variants={v.name: v.describe() for v in variants},
        inter_image_cosine_max=max_cross_cosine(fp32),
        gflop_per_image=gflop_per_image(model, preprocess),
        fp32_peak_gflops=fp32_peak_gflops(device),
        model=results,
        decode=decode,
    )
