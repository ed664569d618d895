"""Checks every vector entering the gallery, stored or queried, must pass.

Policy (normalise-or-refuse): vectors must be finite and of unit L2 norm up to :data:`UNIT_TOLERANCE`;
within that tolerance they are re-normalised (float16 round trips and summation order drift by ~1e-4),
beyond it they are refused, because a non-unit vector means a caller forgot to normalise or mixed up
features, and inner-product scores would silently stop being cosine similarities. Rows already unit up to
float32 rounding (:data:`EXACT_TOLERANCE`) are kept bit for bit, so ``get`` returns what was added.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from reid.errors import ConfigError, GalleryError, ModelMismatch
from reid.gallery.items import GalleryItem

EXPORT_FILES = ("vectors.npy", "items.jsonl", "gallery.json")

UNIT_TOLERANCE = 1e-3
EXACT_TOLERANCE = 1e-5


def as_unit_matrix(vectors: ArrayLike, dim: int, *, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a C-contiguous float32 (N, dim) array of unit rows, or a clear error.

    Raises :class:`ModelMismatch` for a wrong dimension and :class:`GalleryError` for anything else.
    """
    x = np.asarray(vectors)
    if x.dtype.kind != "f":
        raise GalleryError(f"{what} must be floating point, got {x.dtype}")
    if x.ndim != 2:
        raise GalleryError(f"{what} must be a 2-d (N, {dim}) array, got shape {x.shape}")
    if x.shape[1] != dim:
        raise ModelMismatch(f"{what} have dimension {x.shape[1]} but the gallery holds {dim}-d embeddings")
    x = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise GalleryError(f"{what} row {int(np.argmin(finite))} contains NaN or infinity")
    norms = np.linalg.norm(x, axis=1)
    off = np.abs(norms - 1.0) > UNIT_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise GalleryError(
            f"{what} row {row} has L2 norm {norms[row]:.6g}; the gallery needs L2-normalised embeddings"
        )
    drift = np.abs(norms - 1.0) > EXACT_TOLERANCE
    if drift.any():
        x = x.copy()  # never modify the caller's array
        x[drift] /= norms[drift, None]
    return x


def check_k(k: int) -> int:
    """``k`` hits per query as an int, or :class:`ConfigError` unless it is a positive integer."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return int(k)


def check_fingerprint(gallery: str | None, given: str | None) -> None:
    """Refuse embeddings whose model fingerprint differs from the gallery's (``None`` given: unchecked)."""
    if given is not None and given != gallery:
        raise ModelMismatch(
            f"embeddings come from model {given!r} but the gallery was built with model {gallery!r}"
        )


def item_matrix(items: Sequence[GalleryItem], dim: int) -> np.ndarray:
    """The items' vectors as one checked (N, dim) unit matrix (see :func:`as_unit_matrix`)."""
    rows = []
    for i, item in enumerate(items):
        vector = np.asarray(item.vector)
        if vector.ndim != 1:
            raise GalleryError(f"item {i} ({item.key!r}): vector must be 1-d, got shape {vector.shape}")
        rows.append(vector)
    if len({len(v) for v in rows}) > 1:
        raise ModelMismatch(f"items mix vector dimensions {sorted({len(v) for v in rows})}")
    return as_unit_matrix(np.stack(rows), dim, what="item vectors")


def export_dir(out_dir: str | Path) -> Path:
    """``out_dir``, created, after checking it holds no earlier export (never overwritten)."""
    out = Path(out_dir)
    clash = [name for name in EXPORT_FILES if (out / name).exists()]
    if clash:
        raise GalleryError(f"{out / clash[0]} already exists; export into an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    return out
