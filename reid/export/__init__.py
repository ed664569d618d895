"""``reid export``: a checkpoint → an artifact for another runtime, verified against eager fp32.

Every export writes the artifact into a staging folder, loads it into its runtime through the same
:class:`~reid.engine.Extractor` that serves it, embeds sample images at the profile's batch sizes and
compares them with eager fp32 on the source weights (see :mod:`reid.export.verify`). Only an artifact
within its precision's threshold is moved into place — or one forced with ``force``, which the manifest
records — together with its manifest (:mod:`reid.runtimes.artifact`), which also fixes the fingerprint
its embeddings carry.
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from reid.checkpoints import load_checkpoint, sha256_file
from reid.engine import EngineOptions, Extractor
from reid.errors import ConfigError, ExportError
from reid.export.request import WriteRequest
from reid.export.verify import calibration_images, eager_reference, sample_images, verify
from reid.models import ReIDModel
from reid.preprocess import PreprocessConfig, normalize
from reid.runtimes import open_runtime, runtime_class
from reid.runtimes.artifact import (
    MIN_AGREEMENT,
    THRESHOLDS,
    ArtifactManifest,
    Verification,
    artifact_fingerprint,
    write_artifact_manifest,
)
from reid.runtimes.base import BatchProfile, Precision, RuntimeName

logger = logging.getLogger(__name__)

Format = Literal["onnx", "openvino", "tensorrt"]
FORMATS: tuple[Format, ...] = ("onnx", "openvino", "tensorrt")
ExportDtype = Literal["auto", "fp32", "bf16", "fp16", "int8"]
Writer = Callable[[ReIDModel, WriteRequest, Path], list[Path]]


@dataclass(frozen=True)
class FormatSpec:
    runtime: RuntimeName
    suffix: str
    writer: tuple[str, str]  # module, function: imported only when this format is exported
    device: str


SPECS: dict[Format, FormatSpec] = {
    "onnx": FormatSpec("onnxruntime", ".onnx", ("reid.export.onnx", "write_onnx"), "cpu"),
    "openvino": FormatSpec("openvino", ".xml", ("reid.export.openvino", "write_openvino"), "cpu"),
    "tensorrt": FormatSpec("tensorrt", ".ep", ("reid.export.tensorrt", "write_tensorrt"), "cuda"),
}


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """``dtype="auto"``: fp32 for ONNX, bf16 for OpenVINO where the CPU has it natively (else fp32), fp16
    for TensorRT. ``threshold``: the largest relative error accepted (default per precision,
    :data:`reid.runtimes.artifact.THRESHOLDS`). ``samples``: a folder of images to verify on (default:
    synthetic pictures). ``calibration``: a folder of representative images, needed by int8 (OpenVINO,
    NNCF post-training quantisation). ``force``: write an artifact that fails verification (recorded)."""

    format: Format
    dtype: ExportDtype = "auto"
    batch: BatchProfile = field(default_factory=BatchProfile)
    force: bool = False
    threshold: float | None = None
    samples: Path | None = None
    calibration: Path | None = None
    num_samples: int = 16

    def __post_init__(self) -> None:
        if self.format not in SPECS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.threshold is not None and not self.threshold >= 0:
            raise ConfigError(f"threshold must be >= 0, got {self.threshold}")
        if self.num_samples < 3:
            raise ConfigError("verification needs at least 3 sample images")
        if (self.dtype == "int8") != (self.calibration is not None):
            raise ConfigError("--calibration DIR goes with --dtype int8, and int8 needs it")

    @property
    def spec(self) -> FormatSpec:
        return SPECS[self.format]

    def resolve_dtype(self) -> Precision:
        if self.dtype != "auto":
            return self.dtype
        if self.format == "openvino":
            from reid.runtimes.openvino import native_precisions

            return "bf16" if "BF16" in native_precisions() else "fp32"
        return "fp16" if self.format == "tensorrt" else "fp32"

    def resolve_out(self, out: Path | None, weights: Path, dtype: Precision) -> Path:
        """``out`` ending in the format's suffix is the artifact; any other ``out`` is its folder. Default:
        ``<stem>-<format>-<dtype>/<stem><suffix>`` beside the checkpoint."""
        suffix = self.spec.suffix
        if out is None:
            out = weights.parent / f"{weights.stem}-{self.format}-{dtype}"
        return out if out.suffix == suffix else out / f"{weights.stem}{suffix}"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest: ArtifactManifest

    def describe(self) -> str:
        m, v = self.manifest, self.manifest.verification
        verdict = "passed" if v.passed else "FAILED (written with --force)"
        shared = (
            "shares galleries with its source"
            if m.shares_gallery_with_source
            else "needs its own gallery (fingerprint differs from the source's)"
        )
        return (
            f"wrote {self.path} ({m.runtime} {m.runtime_version}, {m.dtype}, batch "
            f"{m.batch.min}..{m.batch.max} opt {m.batch.opt}); verification {verdict}: error "
            f"{v.relative_error:.2e} of the inter-image distance (threshold {v.threshold:g}), "
            f"{v.neighbour_agreement:.0%} of nearest neighbours kept; "
            f"fingerprint {m.fingerprint}: {shared}"
        )


def _shortfall(check: Verification) -> str:
    if not check.relative_error <= check.threshold:  # NaN included
        return (
            f"is {check.relative_error:.3g} of the inter-image distance away from eager fp32, above its "
            f"threshold {check.threshold:g}"
        )
    return (
        f"keeps {check.neighbour_agreement:.0%} of each image's nearest neighbours, below the "
        f"{check.min_agreement:.0%} its precision needs"
    )


def _verification_sizes(profile: BatchProfile, samples: int) -> tuple[int, ...]:
    """Batch 1 where the profile allows it (the service's single requests), and a full batch."""
    return tuple(sorted({profile.min, max(profile.min, min(profile.opt, samples))}))


def export_model(
    model: ReIDModel,
    preprocess: PreprocessConfig,
    out: Path,
    options: ExportOptions,
    *,
    source_file: str,
    source_sha256: str,
    source_fingerprint: str,
) -> ExportResult:
    """Export ``model`` (eval mode, fp32) to ``out``, verify it and write its manifest (see module docs)."""
    spec = options.spec
    dtype = options.resolve_dtype()
    threshold = THRESHOLDS[dtype] if options.threshold is None else options.threshold
    profile = options.batch
    images = sample_images(preprocess, options.samples, count=options.num_samples)
    reference = eager_reference(model, images, preprocess)
    # Trace with 2 images where the profile allows (a batch of 1 invites specialising the batch axis).
    size = min(max(2, profile.min), profile.max)
    example = normalize(images[torch.arange(size) % len(images)], preprocess)
    calibration = (
        normalize(calibration_images(preprocess, options.calibration), preprocess)
        if options.calibration is not None
        else None
    )
    module, name = spec.writer
    writer: Writer = getattr(importlib.import_module(module), name)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        logger.info("exporting to %s (%s, batch %s)", spec.runtime, dtype, profile)
        request = WriteRequest(example, profile, dtype, calibration)
        files = writer(copy.deepcopy(model).eval(), request, staging / out.name)
        draft = ArtifactManifest(
            runtime=spec.runtime,
            runtime_version=runtime_class(spec.runtime).library_version(),
            artifact=out.name,
            files={f.name: sha256_file(f) for f in files},
            dtype=dtype,
            batch=profile,
            model=model.cfg,
            preprocess=preprocess,
            source_file=source_file,
            source_sha256=source_sha256,
            source_fingerprint=source_fingerprint,
            fingerprint=source_fingerprint,
            verification=Verification(
                relative_error=float("nan"),
                threshold=threshold,
                images=0,
                batch_sizes=(),
                inter_image_distance=0,
            ),
            exporter=f"torch {torch.__version__}",
        )
        runtime = open_runtime(staging / out.name, draft, torch.device(spec.device))
        engine = EngineOptions(device=spec.device, max_batch_size=profile.max)
        extractor = Extractor(
            runtime, preprocess, fingerprint=source_fingerprint, options=engine, decode_workers=1
        )
        try:
            check = verify(
                reference,
                lambda batch: extractor.embed_batch(batch, normalize_output=False),
                images,
                _verification_sizes(profile, len(images)),
                threshold=threshold,
                # Neighbourhoods of synthetic pictures say little: the rule needs the user's own crops.
                min_agreement=MIN_AGREEMENT[dtype] if options.samples is not None else 0.0,
            )
        finally:
            extractor.close()
        if not check.passed and not options.force:
            raise ExportError(
                f"the {options.format} {dtype} artifact {_shortfall(check)}: not written "
                "(--force writes it anyway, recorded in its manifest)"
            )
        check = replace(check, forced=not check.passed)
        if check.forced:
            logger.warning("writing %s although it failed verification (--force)", out)
        manifest = replace(
            draft,
            verification=check,
            fingerprint=artifact_fingerprint(source_fingerprint, spec.runtime, dtype, check),
        )
        for file in files:
            os.replace(file, out.parent / file.name)
        write_artifact_manifest(out, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, manifest)


def export_checkpoint(weights: Path, options: ExportOptions, out: Path | None = None) -> ExportResult:
    """Load a checkpoint (any supported source, with its manifest) and export it."""
    loaded = load_checkpoint(weights)
    dtype = options.resolve_dtype()
    return export_model(
        loaded.model,
        loaded.preprocess,
        options.resolve_out(out, loaded.path, dtype),
        options,
        source_file=loaded.path.name,
        source_sha256=loaded.sha256,
        source_fingerprint=loaded.fingerprint,
    )
