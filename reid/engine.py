"""The inference engine: uint8 image batches in, L2-normalised re-ID embeddings out, as fast as possible.

The model itself runs in a :class:`~reid.runtimes.Runtime` (eager PyTorch for a checkpoint; ONNX Runtime,
OpenVINO or TensorRT for an artifact of ``reid export``); preprocessing, flip TTA, chunking, padding to
the runtime's batch profile, L2 normalisation and the fingerprint are done here, once for all of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from reid.checkpoints import load_checkpoint, model_fingerprint
from reid.device_decode import DecodeObserver, DeviceJpegDecoder
from reid.errors import ConfigError, ReidError
from reid.models import ReIDConfig, ReIDModel, reid_config
from reid.optimize import pad_to_bucket
from reid.preprocess import ImageSource, PreprocessConfig, Preprocessor, normalize
from reid.runtimes import RUNTIMES, Runtime, artifacts_in, find_artifact, open_artifact, runtime_for_path
from reid.runtimes.torch import TorchRuntime
from reid.transfer import PinnedUploader
from reid.zoo.options import ZooOptions
from reid.zoo.resolve import WeightsOrigin, resolve_weights

logger = logging.getLogger(__name__)

Dtype = Literal["auto", "fp32", "bf16", "fp16"]
RuntimeChoice = Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"]
RUNTIME_CHOICES: tuple[RuntimeChoice, ...] = ("auto", *RUNTIMES)
_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".tar", ".bin")


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """How to run the model. ``dtype="auto"``: bf16 on a GPU that supports it (fp16 otherwise), fp32 on CPU.

    Low precision runs under autocast, so norms, pooling and the L2 normalisation stay in float32.
    ``runtime="auto"``: the one an exported artifact's suffix names, torch for a checkpoint. An artifact
    runs in the precision it was exported and verified for (``dtype`` must then be ``auto`` or that one);
    ``channels_last``, ``fold_bn`` and ``compile`` are torch's and do not apply to artifacts, and
    ``device="auto"`` lets an artifact's runtime run where it runs (OpenVINO on the CPU, TensorRT on the GPU).
    """

    # Each option is declared here once: the service's settings and the CLI's flags derive from it.
    runtime: RuntimeChoice = field(
        default="auto",
        metadata={"help": "torch, onnxruntime, openvino or tensorrt; auto: an artifact's suffix, torch else"},
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:1, ..."})
    dtype: Dtype = field(
        default="auto", metadata={"help": "inference precision; auto: bf16/fp16 on GPU, fp32 on CPU"}
    )
    channels_last: bool = field(
        default=True, metadata={"help": "NHWC memory format (faster GPU convolutions)"}
    )
    # Folding BN into the preceding conv is exact and saves a memory-bound pass per conv in eager mode.
    fold_bn: bool = field(default=True, metadata={"help": "fold BatchNorm into the convolutions (exact)"})
    compile: bool = field(
        default=False, metadata={"help": "torch.compile the model (slow start, then faster)"}
    )
    cuda_graphs: bool = field(
        default=False,
        metadata={
            "help": "replay CUDA graphs, one per padded batch size (torch and tensorrt on a GPU; fewer "
            "kernel launches, for small batches)"
        },
    )
    flip: bool = field(
        default=False, metadata={"help": "flip test-time augmentation (mirrored crop averaged)"}
    )
    max_batch_size: int = field(default=64, metadata={"help": "most images per model forward"})
    gpu_decode: bool = field(
        default=False,
        metadata={
            "help": "decode and resize JPEGs on the model's GPU (nvJPEG); other formats stay on CPU threads"
        },
    )

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIME_CHOICES:
            raise ConfigError(f"runtime must be one of {', '.join(RUNTIME_CHOICES)}; got {self.runtime!r}")
        if self.dtype not in (*_TORCH_DTYPES, "auto"):
            raise ConfigError(f"dtype must be one of auto, fp32, bf16, fp16; got {self.dtype!r}")
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {self.max_batch_size}")

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except RuntimeError as exc:
            raise ConfigError(f"invalid device {self.device!r}: {exc}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r} requested but CUDA is not available")
        return device

    def resolve_dtype(self, device: torch.device) -> torch.dtype:
        if self.dtype == "auto":
            if device.type != "cuda":
                return torch.float32
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        dtype = _TORCH_DTYPES[self.dtype]
        if dtype == torch.float16 and device.type != "cuda":
            raise ConfigError("fp16 inference is only supported on CUDA; use bf16 or fp32 on CPU")
        return dtype

    def torch_runtime(self, model: ReIDModel) -> TorchRuntime:
        """``model`` on the eager PyTorch runtime these options describe."""
        if self.runtime not in ("auto", "torch"):
            raise ConfigError(
                f"the {self.runtime} runtime runs an artifact of `reid export`, not a checkpoint: "
                f"export one (reid export WEIGHTS --format ...) and point --weights at it"
            )
        device = self.resolve_device()
        return TorchRuntime(
            model,
            device,
            dtype=self.resolve_dtype(device),
            channels_last=self.channels_last,
            fold_bn=self.fold_bn,
            compile=self.compile,
            cuda_graphs=self.cuda_graphs,
            max_batch_size=self.max_batch_size,
        )


class Extractor:
    """Owns one re-ID model on one device. Thread-safe: forwards are serialised by a lock, so a single
    worker (the dynamic batcher) or several callers may use it; preprocessing runs outside the lock.

    ``model``: a checkpoint's model (run on torch as ``options`` say) or a ready runtime.
    """

    def __init__(
        self,
        model: ReIDModel | Runtime,
        preprocess: PreprocessConfig,
        *,
        fingerprint: str,
        options: EngineOptions | None = None,
        decode_workers: int | None = None,
        origin: WeightsOrigin | None = None,
    ) -> None:
        self.options = options or EngineOptions()
        self.origin = origin  # zoo name / URL and published metrics of downloaded weights
        # False-match rate → cosine score: measured for exactly this embedding function (reid eval).
        self.match_thresholds: dict[float, float] = {}
        self.runtime = model if isinstance(model, Runtime) else self.options.torch_runtime(model)
        self.device = self.runtime.device
        self.dtype = self.runtime.dtype
        self.preprocess = preprocess
        self.fingerprint = embedding_fingerprint(fingerprint, flip=self.options.flip)
        self.config: ReIDConfig = self.runtime.config
        self.dim = self.config.embedding_dim
        profile = self.runtime.profile
        limit = self.options.max_batch_size
        self._chunk_size = min(limit, profile.max) if profile else limit
        # An artifact whose profile starts above 1 gets small batches zero-padded (rows are independent).
        self._forward = (
            pad_to_bucket(self.runtime.forward, (profile.min,))
            if profile and profile.min > 1
            else self.runtime.forward
        )
        self._lock = threading.Lock()
        self._preprocessor = Preprocessor(
            preprocess, workers=decode_workers, device_decoder=self.device_decoder(preprocess)
        )
        # Inputs reach a GPU through reused pinned buffers, copied on a side stream (reid/transfer.py).
        self._uploader = PinnedUploader(self.device) if self.device.type == "cuda" else None

    def device_decoder(
        self, preprocess: PreprocessConfig, observe: DecodeObserver | None = None
    ) -> DeviceJpegDecoder | None:
        """A decoder of JPEGs on the model's GPU for ``preprocess`` when the options ask for one."""
        if not self.options.gpu_decode:
            return None
        if self.device.type != "cuda":
            raise ConfigError(f"gpu_decode decodes on the model's GPU, but the model runs on {self.device}")
        return DeviceJpegDecoder(preprocess, self.device, observe=observe)

    # --- construction -------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, source: str = "auto", options: EngineOptions | None = None, **kwargs: Any
    ) -> Extractor:
        loaded = load_checkpoint(path, source=source)
        logger.info(
            "loaded %s (%s, %s): fingerprint %s",
            path,
            loaded.source,
            loaded.config.backbone_name,
            loaded.fingerprint,
        )
        extractor = cls(
            loaded.model, loaded.preprocess, fingerprint=loaded.fingerprint, options=options, **kwargs
        )
        thresholds = loaded.manifest.thresholds if loaded.manifest is not None else None
        if thresholds and thresholds.get("fingerprint") == extractor.fingerprint:
            extractor.match_thresholds = {float(lv["fmr"]): float(lv["score"]) for lv in thresholds["levels"]}
        elif thresholds:
            logger.warning(
                "%s: its match thresholds were measured for %s, not %s; matches are not flagged",
                path,
                thresholds.get("fingerprint"),
                extractor.fingerprint,
            )
        return extractor

    @classmethod
    def from_artifact(
        cls, path: str | Path, *, options: EngineOptions | None = None, **kwargs: Any
    ) -> Extractor:
        """An artifact of ``reid export`` on its runtime; it embeds with the fingerprint its manifest gives
        (its source checkpoint's only where verified close enough, see :mod:`reid.runtimes.artifact`)."""
        options = options or EngineOptions()
        # "auto": where the artifact's runtime runs (OpenVINO on the CPU even on a host with a GPU).
        device = None if options.device == "auto" else options.resolve_device()
        runtime, manifest = open_artifact(Path(path), device, options.dtype)
        if options.cuda_graphs:
            runtime.use_cuda_graphs(options.max_batch_size)
        logger.info(
            "loaded %s (%s %s, exported from %s): fingerprint %s%s",
            path,
            manifest.runtime,
            manifest.dtype,
            manifest.source_file,
            manifest.fingerprint,
            "" if manifest.shares_gallery_with_source else " (not shared with its source checkpoint)",
        )
        return cls(runtime, manifest.preprocess, fingerprint=manifest.fingerprint, options=options, **kwargs)

    @classmethod
    def random_init(
        cls,
        config: ReIDConfig | None = None,
        preprocess: PreprocessConfig | None = None,
        *,
        options: EngineOptions | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> Extractor:
        """A randomly initialised model: for demos and tests only, its embeddings mean nothing."""
        config = config or reid_config()
        preprocess = preprocess or PreprocessConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ReIDModel(config)
        fingerprint = model_fingerprint(config, preprocess, model.state_dict())
        return cls(model, preprocess, fingerprint=fingerprint, options=options, **kwargs)

    # --- inference ----------------------------------------------------------------------------------

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocess.height, self.preprocess.width

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        """Features of a uint8 batch already on :attr:`device`."""
        x = normalize(batch, self.preprocess, channels_last=self.runtime.channels_last)
        feats = self._forward(x)
        if self.options.flip:
            feats = (feats + self._forward(x.flip(3))) / 2
        return feats

    def embed_batch(self, batch: torch.Tensor, *, normalize_output: bool = True) -> np.ndarray:
        """Embed a uint8 (N, 3, H, W) batch; chunks by ``max_batch_size``. Returns float32 (N, dim)."""
        expected = (3, *self.input_size)
        if batch.dtype != torch.uint8 or batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise ConfigError(
                f"expected a uint8 batch of shape (N, {expected}), got {batch.dtype} {tuple(batch.shape)}"
            )
        out = np.empty((batch.shape[0], self.dim), dtype=np.float32)
        chunks = list(_chunks(batch, self._chunk_size))
        with self._lock, torch.inference_mode():
            staged = self._to_device(chunks[0][1]) if chunks else batch
            for index, (start, chunk) in enumerate(chunks):
                feats = self._run(staged)
                if index + 1 < len(chunks):
                    # Queued before waiting for these features: on a GPU the copy overlaps the compute.
                    staged = self._to_device(chunks[index + 1][1])
                if normalize_output:
                    feats = torch.nn.functional.normalize(feats, dim=1)
                out[start : start + chunk.shape[0]] = feats.cpu().numpy()
        return out

    def _to_device(self, chunk: torch.Tensor) -> torch.Tensor:
        if self._uploader is None or chunk.device.type != "cpu":
            return chunk.to(self.device)
        return self._uploader.upload(chunk)

    def prepare(self, images: Sequence[ImageSource]) -> torch.Tensor:
        """Decode + resize on the worker threads (raises the first bad image, with its index)."""
        return self._preprocessor.prepare_batch(images)

    def prepare_many(self, images: Sequence[ImageSource]) -> list[torch.Tensor | ReidError]:
        """Like :meth:`prepare` but keeps going: bad images come back as errors in their slots."""
        return self._preprocessor.prepare_many(images)

    def embed(self, images: Sequence[ImageSource], *, normalize_output: bool = True) -> np.ndarray:
        """Bytes or paths → (N, dim) float32 embeddings, L2-normalised unless asked otherwise."""
        if not images:
            return np.empty((0, self.dim), dtype=np.float32)
        return self.embed_batch(self.prepare(images), normalize_output=normalize_output)

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Run once per batch shape so the first request does not pay for allocation / compilation
        (with compile: once per padding bucket, whatever ``batch_sizes`` says)."""
        for n in self.runtime.warmup_sizes or batch_sizes:
            self.embed_batch(torch.zeros((min(n, self._chunk_size), 3, *self.input_size), dtype=torch.uint8))

    def info(self) -> dict[str, Any]:
        return {
            "model": self.fingerprint,
            "backbone": self.config.backbone_name,
            "dim": self.dim,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            # torch-only options read False on the other runtimes, which report their own settings.
            "channels_last": self.runtime.channels_last,
            "compile": False,
            "fold_bn": False,
            "cuda_graphs": False,
            **self.runtime.describe(),
            "flip": self.options.flip,
            "max_batch_size": self.options.max_batch_size,
            "gpu_decode": self.options.gpu_decode,
            "input_size": list(self.input_size),
            "weights": self.origin.to_dict() if self.origin is not None else None,
            "match_thresholds": dict(self.match_thresholds),
        }

    def close(self) -> None:
        self._preprocessor.close()
        self.runtime.close()


def embedding_fingerprint(model_fingerprint: str, *, flip: bool) -> str:
    """The fingerprint of an extractor's embeddings. Flip TTA is a different embedding function: a gallery
    built without it must refuse its vectors."""
    return f"{model_fingerprint}+flip" if flip else model_fingerprint


def _chunks(batch: torch.Tensor, size: int) -> Iterator[tuple[int, torch.Tensor]]:
    for start in range(0, batch.shape[0], size):
        yield start, batch[start : start + size]


def find_checkpoint(path: str | Path) -> Path | None:
    """A checkpoint file, or the single checkpoint in a folder; None for an empty folder. The weights of
    an exported OpenVINO IR (``model.bin`` beside ``model.xml``) are not a checkpoint."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise ConfigError(f"weights path {path} does not exist")
    ir_weights = {p.with_suffix(".bin") for p in artifacts_in(path)}
    found = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES and p not in ir_weights
    )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ConfigError(f"{path} holds several checkpoints ({names}); point to one file")
    return found[0] if found else None


DEFAULT_WEIGHTS_DIR = Path("weights")

RANDOM_WEIGHTS_WARNING = (
    "\n" + "!" * 78 + "\n"
    "!!  NO WEIGHTS FOUND in {where}: using RANDOMLY INITIALISED weights.\n"
    "!!  Embeddings are meaningless. Put a checkpoint in weights/ or set REID_WEIGHTS.\n" + "!" * 78
)


def default_weights() -> Path | None:
    """Where weights come from when none are named: ``./weights/`` if that folder exists, else ``None``
    (random weights). Only a path the user names explicitly is an error when it does not exist."""
    return DEFAULT_WEIGHTS_DIR if DEFAULT_WEIGHTS_DIR.is_dir() else None


def locate_weights(weights: str | Path | None, runtime: str = "auto") -> Path | None:
    """The file :func:`load_extractor` loads for ``weights``: an exported artifact, a checkpoint, or
    ``None`` (random weights). A folder holding both a checkpoint and an artifact needs ``runtime``."""
    if weights is None:
        artifact = checkpoint = None
    else:
        artifact = find_artifact(weights, runtime)
        checkpoint = find_checkpoint(weights)
    if artifact is not None:
        if checkpoint is not None and checkpoint != artifact and runtime == "auto":
            raise ConfigError(
                f"{weights} holds a checkpoint ({checkpoint.name}) and an exported artifact "
                f"({artifact.name}); choose with --runtime / REID_RUNTIME or point to one file"
            )
        return artifact
    if runtime not in ("auto", "torch"):
        raise ConfigError(
            f"no {runtime} artifact in {weights or '(no weights given)'}: run `reid export` first"
        )
    return checkpoint


def load_extractor(
    weights: str | Path | None,
    *,
    options: EngineOptions | None = None,
    zoo: ZooOptions | None = None,
    **kwargs: Any,
) -> Extractor:
    """The product's loader: an exported artifact, a checkpoint (file or folder), a zoo name or an https URL
    (downloaded into the cache, see :mod:`reid.zoo`; ``zoo=None`` reads its options from the environment),
    or random weights with a loud warning (see :func:`locate_weights`)."""
    options = options or EngineOptions()
    if weights is not None:
        resolved = resolve_weights(weights, zoo)
        weights, kwargs = resolved.path, {"origin": resolved.origin, **kwargs}
    path = locate_weights(weights, options.runtime)
    if path is None:
        logger.warning(RANDOM_WEIGHTS_WARNING.format(where=weights or "(no path given)"))
        return Extractor.random_init(options=options, **kwargs)
    if runtime_for_path(path) is not None:
        return Extractor.from_artifact(path, options=options, **kwargs)
    return Extractor.from_checkpoint(path, options=options, **kwargs)
