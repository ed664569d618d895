"""Shared test helpers: randomised models and the foreign key layouts, written from the public key names."""

from __future__ import annotations

from pathlib import Path

import safetensors.torch
import torch

from reid.models import ReIDConfig, ReIDModel

StateDict = dict[str, torch.Tensor]


def randomize_norms(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial affine parameters and running statistics in every norm (incl. the BNNeck and the
    zero-initialised non-local output BN) and a non-default GeM p, so a mis-wired tensor cannot hide."""
    g = torch.Generator().manual_seed(seed)
    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, norms) and m.affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                assert m.running_mean is not None
                assert m.running_var is not None
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        for name, tensor in module.state_dict().items():
            if name.endswith("pool.p"):
                tensor.fill_(2.0 + torch.rand(1, generator=g).item())


def random_model(cfg: ReIDConfig, seed: int = 0) -> ReIDModel:
    """A seeded model in eval mode with randomised norms (see :func:`randomize_norms`)."""
    torch.manual_seed(seed)
    model = ReIDModel(cfg)
    randomize_norms(model, seed + 1)
    return model.eval()


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
