"""Checkpoint file → ready ``ReIDModel``: read safely, remap, rebuild the config, load strictly, identify.

Precedence for the model config and preprocessing: explicit arguments, then the manifest beside the
file (checked against the file's SHA-256), then inference from the weights and the source's defaults.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid.checkpoints.fingerprint import model_fingerprint
from reid.checkpoints.infer import default_preprocess, infer_config
from reid.checkpoints.io import read_state_dict, sha256_file, write_safetensors
from reid.checkpoints.manifest import Manifest, check_manifest_writable, read_manifest, write_manifest
from reid.checkpoints.sources import detect_source, remap
from reid.checkpoints.strict import LoadReport, load_into
from reid.errors import CheckpointError
from reid.models import ReIDConfig, ReIDModel
from reid.preprocess import PreprocessConfig

logger = logging.getLogger(__name__)

AUTO = "auto"
SAFETENSORS_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode with everything needed to feed it and to label its embeddings.

    ``manifest`` is the manifest found beside the file (``None`` when the config was inferred or given);
    ``dropped`` lists the file's entries that are not part of an inference model (ImageNet ``fc``,
    fast-reid pixel statistics), ``report`` what the strict load skipped or kept at initial values.
    """

    path: Path
    model: ReIDModel
    config: ReIDConfig
    preprocess: PreprocessConfig
    source: str
    fingerprint: str
    sha256: str
    manifest: Manifest | None
    report: LoadReport
    dropped: tuple[str, ...] = ()

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def summary(self) -> str:
        """What was set aside while loading, e.g. ``"dropped 1 classifier key; ignored 2 entries"``."""
        parts = []
        if self.report.dropped_classifier:
            parts.append(f"dropped {len(self.report.dropped_classifier)} classifier key(s)")
        if self.dropped:
            parts.append(f"ignored {', '.join(self.dropped)}")
        return "; ".join(parts) or "nothing dropped"

    def describe(self, notes: str = "") -> Manifest:
        """A manifest for the loaded file itself."""
        return Manifest(
            model=self.config,
            preprocess=self.preprocess,
            source=self.source,
            weights_file=self.path.name,
            sha256=self.sha256,
            embedding_dim=self.embedding_dim,
            fingerprint=self.fingerprint,
            notes=notes,
        )


def _manifest_for(path: Path, sha256: str) -> Manifest | None:
    manifest = read_manifest(path)
    if manifest is None or manifest.sha256 == sha256:
        return manifest
    if manifest.weights_file == path.name:
        raise CheckpointError(
            f"{path} changed since its manifest was written (sha256 {sha256[:12]}…, manifest says "
            f"{manifest.sha256[:12]}…); restore the file or write a new manifest"
        )
    logger.warning("ignoring the manifest beside %s: it describes %s", path, manifest.weights_file)
    return None


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    source: str = AUTO,
    config: ReIDConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    last_stride: int | None = None,
    input_size: tuple[int, int] | None = None,
    use_manifest: bool = True,
) -> LoadedModel:
    """Load a weight file of any supported source into a fresh :class:`ReIDModel` (eval mode, strict).

    ``source``: ``"auto"`` (the manifest's, else detected from key names) or one of
    :data:`reid.checkpoints.SOURCES`. ``last_stride`` and ``input_size`` (height, width) override the
    config and preprocessing however they were obtained. ``use_manifest=False`` ignores a manifest.
    Raises :class:`CheckpointError` (or :class:`UnsafeCheckpoint`) with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    sha256 = sha256_file(path)
    manifest = _manifest_for(path, sha256) if use_manifest else None
    raw = read_state_dict(path)
    if source == AUTO:
        source = manifest.source if manifest is not None else detect_source(raw)
    remapped = remap(raw, source)

    if config is None:
        config = manifest.model if manifest is not None else infer_config(remapped.state_dict, source)
    if last_stride is not None and last_stride != config.backbone.last_stride:
        config = dataclasses.replace(config, backbone=config.backbone.replace(last_stride=last_stride))
    if preprocess is None:
        if manifest is not None:
            preprocess = manifest.preprocess
        else:
            preprocess = default_preprocess(
                source, config, pixel_mean=remapped.pixel_mean, pixel_std=remapped.pixel_std
            )
    if input_size is not None:
        preprocess = dataclasses.replace(preprocess, height=input_size[0], width=input_size[1])

    model = ReIDModel(config)
    report = load_into(model, remapped.state_dict, what=str(path))
    model.eval()
    fingerprint = model_fingerprint(config, preprocess, model.state_dict())
    logger.info(
        "loaded %s (%s layout, %s, %d-d, %s)",
        path,
        source,
        config.backbone_name,
        config.embedding_dim,
        fingerprint,
    )
    return LoadedModel(
        path=path,
        model=model,
        config=config,
        preprocess=preprocess,
        source=source,
        fingerprint=fingerprint,
        sha256=sha256,
        manifest=manifest,
        report=report,
        dropped=remapped.dropped,
    )


def export_safetensors(loaded: LoadedModel, dst: str | os.PathLike[str]) -> Manifest:
    """Save a loaded model as a clean ``.safetensors`` in our layout, with its manifest beside it."""
    dst = Path(dst)
    if dst.suffix != SAFETENSORS_SUFFIX:
        raise CheckpointError(f"the converted file must end in {SAFETENSORS_SUFFIX}, got {dst.name}")
    if dst.exists() and dst.resolve() == loaded.path.resolve():
        raise CheckpointError(f"refusing to overwrite the input file {dst}")
    check_manifest_writable(dst)
    write_safetensors(
        loaded.model.state_dict(), dst, metadata={"format": "pt", "fingerprint": loaded.fingerprint}
    )
    manifest = Manifest(
        model=loaded.config,
        preprocess=loaded.preprocess,
        source="reid",
        weights_file=dst.name,
        sha256=sha256_file(dst),
        embedding_dim=loaded.embedding_dim,
        fingerprint=loaded.fingerprint,
        notes=f"converted from {loaded.source} checkpoint {loaded.path.name} (sha256 {loaded.sha256}); "
        f"{loaded.summary()}",
    )
    write_manifest(dst, manifest)
    return manifest


def convert_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    source: str = AUTO,
    config: ReIDConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    last_stride: int | None = None,
    input_size: tuple[int, int] | None = None,
) -> Manifest:
    """Remap ``src`` once and save it as ``dst`` (``.safetensors``) + ``<dst stem>.json``."""
    loaded = load_checkpoint(
        src,
        source=source,
        config=config,
        preprocess=preprocess,
        last_stride=last_stride,
        input_size=input_size,
    )
    return export_safetensors(loaded, dst)


def write_checkpoint_manifest(
    path: str | os.PathLike[str],
    *,
    source: str = AUTO,
    config: ReIDConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    last_stride: int | None = None,
    input_size: tuple[int, int] | None = None,
    notes: str = "",
) -> Manifest:
    """Load ``path`` (ignoring any old manifest) and write ``<stem>.json`` beside it to describe it."""
    loaded = load_checkpoint(
        path,
        source=source,
        config=config,
        preprocess=preprocess,
        last_stride=last_stride,
        input_size=input_size,
        use_manifest=False,
    )
    manifest = loaded.describe(notes)
    write_manifest(path, manifest)
    return manifest


def record_thresholds(path: str | os.PathLike[str], thresholds: dict[str, Any]) -> Manifest:
    """Store match ``thresholds`` in the manifest of the checkpoint ``path`` (written first for a foreign
    file that has none), so that whoever serves these weights can flag matches."""
    manifest = read_manifest(path) or load_checkpoint(path, use_manifest=False).describe()
    updated = dataclasses.replace(manifest, thresholds=thresholds)
    write_manifest(path, updated)
    return updated
