"""Test helpers for jobs and the commands built on them: the calibrated test model as a checkpoint."""

from __future__ import annotations

from pathlib import Path

from reid.checkpoints import Manifest, sha256_file, write_manifest, write_safetensors
from reid.models import reid_config
from reid.preprocess import PreprocessConfig
from tests.helpers import _calibrated_model, calibrated_extractor


def write_test_checkpoint(folder: Path) -> Path:
    """Save the model of :func:`tests.helpers.calibrated_extractor` (resnet18, 64×32) with its manifest
    as ``folder/tiny.safetensors``, for ``--weights``; loading it gives the same fingerprint."""
    cfg, preprocess = reid_config("resnet18"), PreprocessConfig(height=64, width=32)
    model = _calibrated_model(cfg, preprocess, 0)
    fingerprint = calibrated_extractor().fingerprint
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.safetensors"
    write_safetensors(model.state_dict(), path)
    manifest = Manifest(
        model=cfg,
        preprocess=preprocess,
        source="reid",
        weights_file=path.name,
        sha256=sha256_file(path),
        embedding_dim=cfg.embedding_dim,
        fingerprint=fingerprint,
    )
    write_manifest(path, manifest)
    return path
