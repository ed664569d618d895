"""Shared test helpers, and the one place that builds test models: small calibrated models (and the
checkpoint of one), randomised models for the checkpoint-layout tests, the service's tiny model, and
synthetic pictures.

Random-init networks map every image to nearly the same direction (cosine ~0.999), which hides real
errors. Calibrating BatchNorm statistics on varied inputs spreads the embeddings out, so comparisons can
be judged against the distance between two different images.
"""

from __future__ import annotations

import copy
import functools
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reid.checkpoints import model_fingerprint, write_checkpoint_manifest, write_safetensors
from reid.engine import EngineOptions, Extractor
from reid.models import ReIDConfig, ReIDModel, reid_config
from reid.preprocess import PreprocessConfig

TINY_SIZE = (64, 32)  # the tiny model's input (height, width): small enough for a fast CPU forward


def smooth_images(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 3, H, W) pictures made of upsampled low-resolution noise: varied, deterministic."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 4, 2), generator=g)
    up = torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
    return (up * 255).round().to(torch.uint8)


def jpeg_bytes(image: torch.Tensor, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@torch.no_grad()
def damp_residuals(model: torch.nn.Module, gamma: float = 0.2) -> None:
    """Shrink the last norm of every residual branch, as training does: a random deep ResNet with unit
    gammas is chaotic (any rounding changes the embedding completely), a trained one is not."""
    for m in model.modules():
        last = getattr(m, "bn3", None) if hasattr(m, "conv3") else getattr(m, "bn2", None)
        if isinstance(last, torch.nn.BatchNorm2d) and hasattr(m, "downsample"):
            last.weight.fill_(gamma)


@torch.no_grad()
def calibrate_bn(model: torch.nn.Module, inputs: torch.Tensor, steps: int = 2) -> None:
    """Replace BN running statistics by cumulative averages over ``inputs`` (float, normalised)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    for _ in range(steps):
        model(inputs)
    model.eval()


@functools.lru_cache(maxsize=8)
def _calibrated_model(cfg: ReIDConfig, preprocess: PreprocessConfig, seed: int) -> ReIDModel:
    torch.manual_seed(seed)
    model = ReIDModel(cfg)
    damp_residuals(model)
    images = smooth_images(16, preprocess.height, preprocess.width, seed=seed + 1000)
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1) / preprocess.pixel_range
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1) / preprocess.pixel_range
    calibrate_bn(model, (images.float() / 255 - mean) / std)
    return model


def calibrated_extractor(
    cfg: ReIDConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    options: EngineOptions | None = None,
    seed: int = 0,
) -> Extractor:
    """A small model (resnet18 backbone, 64×32 input by default) with trained-like behaviour; cached."""
    cfg = cfg or reid_config("resnet18")
    preprocess = preprocess or PreprocessConfig(height=64, width=32)
    model = copy.deepcopy(_calibrated_model(cfg, preprocess, seed))
    fingerprint = model_fingerprint(cfg, preprocess, model.state_dict())
    options = options or EngineOptions(device="cpu")
    return Extractor(model, preprocess, fingerprint=fingerprint, options=options, decode_workers=2)


def assert_same_outputs(a: torch.Tensor, b: torch.Tensor) -> None:
    """Outputs of the same weights on the same input: equal up to float rounding, never bit for bit
    (kernels, and so rounding, differ between CPUs, thread counts and memory layouts)."""
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.asarray((a * b).sum(-1))


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


def tiny_extractor(cls: type[Extractor] = Extractor) -> Extractor:
    return cls.random_init(
        reid_config("resnet18"),
        PreprocessConfig(height=TINY_SIZE[0], width=TINY_SIZE[1]),
        options=EngineOptions(device="cpu", max_batch_size=16),
        decode_workers=2,
    )


def write_test_checkpoint(folder: Path) -> Path:
    """Save the model of :func:`tests.helpers.calibrated_extractor` (resnet18, 64×32) with its manifest
    as ``folder/tiny.safetensors``, for ``--weights``; loading it gives the same fingerprint."""
    cfg, preprocess = reid_config("resnet18"), PreprocessConfig(height=64, width=32)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.safetensors"
    write_safetensors(_calibrated_model(cfg, preprocess, 0).state_dict(), path)
    manifest = write_checkpoint_manifest(path, source="reid", config=cfg, preprocess=preprocess)
    assert manifest.fingerprint == calibrated_extractor().fingerprint
    return path
