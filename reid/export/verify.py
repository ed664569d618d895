"""Checking an exported artifact against eager fp32 on the source weights.

The error of an image is the distance between its artifact and eager embeddings (both L2-normalised);
it is judged against the median distance between two *different* images' eager embeddings, so "0.01"
means "a hundredth of what separates two pictures", whatever the model. Raw cosines would prove nothing:
a network with untrained statistics maps every image to nearly the same direction.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from reid.datasets.records import is_image_file
from reid.embeddings import l2_normalize
from reid.errors import ConfigError
from reid.preprocess import PreprocessConfig, Preprocessor, normalize
from reid.runtimes.artifact import Verification

DEFAULT_SAMPLES = 16
MAX_SAMPLES = 64
# NNCF's default calibration subset: enough for activation ranges, bounded for memory.
MAX_CALIBRATION = 300

Embed = Callable[[torch.Tensor], np.ndarray]


def synthetic_jpegs(count: int, size: tuple[int, int], *, seed: int = 0, quality: int = 90) -> list[bytes]:
    """``count`` distinct JPEGs of ``size`` (height, width): smooth random colour fields with noise, so
    they compress and decode like photographs rather than like flat colour."""
    rng = np.random.default_rng(seed)
    height, width = size
    images = []
    for _ in range(count):
        coarse = rng.random((3, max(2, height // 16), max(2, width // 16)), dtype=np.float32)
        smooth = F.interpolate(
            torch.from_numpy(coarse)[None], size=size, mode="bicubic", align_corners=False
        )[0]
        pixels = smooth.numpy().transpose(1, 2, 0) * 200 + rng.normal(0, 12, (height, width, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
        images.append(buffer.getvalue())
    return images


def sample_images(
    preprocess: PreprocessConfig, folder: Path | None = None, *, count: int = DEFAULT_SAMPLES, seed: int = 0
) -> torch.Tensor:
    """uint8 (N, 3, H, W) inputs to verify on, prepared per the checkpoint's contract: up to ``count``
    images of ``folder`` (sorted, so runs agree) or, without one, ``count`` synthetic pictures."""
    if folder is not None:
        files = sorted(p for p in Path(folder).rglob("*") if is_image_file(p))[:MAX_SAMPLES]
        if len(files) < 3:
            raise ConfigError(f"{folder} holds {len(files)} image(s); verification needs at least 3")
        sources: Sequence[str | bytes] = [str(p) for p in files[:count]]
    else:
        sources = synthetic_jpegs(count, (preprocess.height, preprocess.width), seed=seed)
    with Preprocessor(preprocess) as pre:
        return pre.prepare_batch(sources)


def calibration_images(
    preprocess: PreprocessConfig, folder: Path, *, count: int = MAX_CALIBRATION
) -> torch.Tensor:
    """Up to ``count`` images of ``folder`` (recursively, spread evenly over the sorted list) for int8
    calibration, prepared per the checkpoint's contract."""
    files = sorted(p for p in Path(folder).rglob("*") if is_image_file(p))
    if len(files) < 2:
        raise ConfigError(
            f"{folder} holds {len(files)} image(s); int8 calibration needs representative crops"
        )
    step = max(1, len(files) // count)
    with Preprocessor(preprocess) as pre:
        return pre.prepare_batch([str(p) for p in files[::step][:count]])


def _unit64(features: np.ndarray) -> np.ndarray:
    return l2_normalize(features, np.float64)  # float64: the errors measured are tiny


def largest_distance(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Largest distance between an image's two embeddings (rows L2-normalised, float64)."""
    return float(np.linalg.norm(_unit64(reference) - _unit64(candidate), axis=1).max())


def median_distance(features: np.ndarray) -> float:
    """Median distance between two different images' embeddings (rows L2-normalised, float64)."""
    if len(features) < 2:
        raise ConfigError("the error is relative to the distance between images: give at least 2")
    unit = _unit64(features)
    rows, cols = np.triu_indices(len(unit), k=1)
    between = float(np.median(np.linalg.norm(unit[rows] - unit[cols], axis=1)))
    if between <= 0:
        raise ConfigError("the sample images all have the same embedding: verification cannot judge errors")
    return between


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(:func:`largest_distance` / :func:`median_distance` of ``reference``, that median)."""
    between = median_distance(reference)
    return largest_distance(reference, candidate) / between, between


@torch.inference_mode()
def eager_reference(model: torch.nn.Module, images: torch.Tensor, preprocess: PreprocessConfig) -> np.ndarray:
    """The embeddings the artifact is judged against: the source model, fp32, eager, unmodified."""
    model = model.eval()
    return np.concatenate(
        [model(normalize(images[i : i + 16], preprocess)).float().numpy() for i in range(0, len(images), 16)]
    )


def neighbour_agreement(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's ``k`` nearest other rows (cosine) under ``reference`` that are also among
    its ``k`` nearest under ``candidate``: rank-k agreement without labels. ``k`` shrinks to half the other
    rows, so that a neighbourhood is never "everyone". A NaN candidate agrees with nothing."""
    k = min(k, (len(reference) - 1) // 2)
    if k < 1:
        raise ConfigError("neighbour agreement needs at least 3 images")

    def nearest(features: np.ndarray) -> np.ndarray:
        unit = _unit64(features)
        sims = np.nan_to_num(unit @ unit.T, nan=-np.inf)
        np.fill_diagonal(sims, np.inf)  # itself first, then dropped
        return np.argsort(-sims, axis=1, kind="stable")[:, 1 : k + 1]

    if not np.isfinite(candidate).all():
        return 0.0
    ours, theirs = nearest(reference), nearest(candidate)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, theirs, strict=True)]))


def verify(
    reference: np.ndarray,
    embed: Embed,
    images: torch.Tensor,
    batch_sizes: Sequence[int],
    *,
    threshold: float,
    min_agreement: float = 0.0,
) -> Verification:
    """Run ``embed`` over ``images`` in chunks of each batch size; the worst run counts."""
    worst, agreement, between = 0.0, 1.0, 0.0
    for size in batch_sizes:
        got = np.concatenate([embed(images[i : i + size]) for i in range(0, len(images), size)])
        error, between = relative_error(reference, got)
        # NaN or inf outputs fail whatever the threshold (max() would skip a NaN).
        worst = max(worst, error) if np.isfinite(error) else float("inf")
        agreement = min(agreement, neighbour_agreement(reference, got))
    return Verification(
        relative_error=worst,
        threshold=threshold,
        images=len(images),
        batch_sizes=tuple(batch_sizes),
        inter_image_distance=between,
        neighbour_agreement=agreement,
        min_agreement=min_agreement,
    )
