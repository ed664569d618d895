"""Shared test helpers: small calibrated models and synthetic pictures.

Random-init networks map every image to nearly the same direction (cosine ~0.999), which hides real
errors. Calibrating BatchNorm statistics on varied inputs spreads the embeddings out, so comparisons can
be judged against the distance between two different images.
"""

from __future__ import annotations

import copy
import functools
import io

import numpy as np
import torch
from PIL import Image

from reid.checkpoints import model_fingerprint
from reid.engine import EngineOptions, Extractor
from reid.models import ReIDConfig, ReIDModel, reid_config
from reid.preprocess import PreprocessConfig


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
