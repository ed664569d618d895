"""A short, deterministic identity of an embedding function: galleries refuse vectors from another one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch

from reid.checkpoints.sources import HEAD_CLASSIFIER
from reid.models import ReIDConfig
from reid.preprocess import PreprocessConfig

FINGERPRINT_HEX_CHARS = 16


def _embedding_relevant(cfg: ReIDConfig, preprocess: PreprocessConfig) -> dict[str, Any]:
    # The classifier and the decode-size limit never change an embedding, so they do not take part.
    model = cfg.to_dict()
    del model["num_classes"]
    pre = preprocess.to_dict()
    del pre["max_pixels"]
    return {"model": model, "preprocess": pre}


def model_fingerprint(
    cfg: ReIDConfig, preprocess: PreprocessConfig, state_dict: Mapping[str, torch.Tensor]
) -> str:
    """``"<backbone_name>-<16 hex>"``: SHA-256 over the canonical JSON of config and preprocessing, then
    every tensor's name, dtype, shape and bytes in sorted name order (the classifier excluded).

    Pass the state dict the model will run with (a model cast to fp16 gets another fingerprint).
    """
    digest = hashlib.sha256()
    canonical = json.dumps(_embedding_relevant(cfg, preprocess), sort_keys=True, separators=(",", ":"))
    digest.update(canonical.encode())
    for name in sorted(state_dict):
        if name.startswith(HEAD_CLASSIFIER):
            continue
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"\n{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{cfg.backbone_name}-{digest.hexdigest()[:FINGERPRINT_HEX_CHARS]}"
