"""Checkpoint-test helpers: foreign key layouts, written from the public key names, and saving them.

The test models themselves come from :mod:`tests.helpers`."""

from __future__ import annotations

from pathlib import Path

import safetensors.torch
import torch

StateDict = dict[str, torch.Tensor]


def embed(model: torch.nn.Module, height: int = 64, width: int = 32, seed: int = 1) -> torch.Tensor:
    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        out = model(x)
    assert torch.isfinite(out).all()
    return out


def rename(state: StateDict, prefixes: list[tuple[str, str]]) -> StateDict:
    """Map our names to a foreign layout by the first matching prefix of ``prefixes`` (ours → theirs)."""
    out = {}
    for key, value in state.items():
        for ours, theirs in prefixes:
            if key.startswith(ours):
                out[theirs + key[len(ours) :]] = value.clone()
                break
        else:
            raise AssertionError(f"no layout rule for {key}")
    return out


def save(state: dict, path: Path) -> Path:
    """``.safetensors`` through safetensors, anything else through torch.save."""
    if path.suffix == ".safetensors":
        safetensors.torch.save_file(state, path)
    else:
        torch.save(state, path)
    return path
