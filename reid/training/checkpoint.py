"""What a training run leaves behind: the servable checkpoint (safetensors + manifest) and the state that
``--resume`` continues from."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from reid.checkpoints import Manifest, model_fingerprint, write_manifest
from reid.checkpoints.io import sha256_file, write_safetensors
from reid.errors import CheckpointError
from reid.fileio import atomic_file
from reid.models import ReIDModel
from reid.preprocess import PreprocessConfig

CLASSIFIER_PREFIX = "head.classifier."


def servable(model: ReIDModel, preprocess: PreprocessConfig) -> tuple[ReIDModel, str]:
    """A CPU copy of ``model`` without its training classifier, in eval mode, and its fingerprint."""
    cfg = dataclasses.replace(model.cfg, num_classes=0)
    state = {
        k: v.detach().cpu().clone()
        for k, v in model.state_dict().items()
        if not k.startswith(CLASSIFIER_PREFIX)
    }
    served = ReIDModel(cfg)
    served.load_state_dict(state, strict=True)
    return served.eval(), model_fingerprint(cfg, preprocess, state)


def save_servable(
    model: ReIDModel, preprocess: PreprocessConfig, path: Path, training: dict[str, Any]
) -> Manifest:
    """Write ``path`` (``.safetensors``) and its manifest, which records ``training``."""
    served, fingerprint = servable(model, preprocess)
    write_safetensors(served.state_dict(), path, metadata={"format": "pt", "fingerprint": fingerprint})
    manifest = Manifest(
        model=served.cfg,
        preprocess=preprocess,
        source="reid",
        weights_file=path.name,
        sha256=sha256_file(path),
        embedding_dim=served.embedding_dim,
        fingerprint=fingerprint,
        notes=f"trained by reid train ({training.get('config', {}).get('backbone', '?')}, "
        f"{training.get('epochs_done', '?')} epochs)",
        training=training,
    )
    write_manifest(path, manifest)
    return manifest


def save_state(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` that replaces ``path`` atomically: a crash never leaves half a state."""
    with atomic_file(path) as f:
        torch.save(state, f)


def load_state(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"nothing to resume: {path} does not exist") from None
    except Exception as exc:
        raise CheckpointError(f"cannot read training state {path}: {exc}") from exc
    return state
