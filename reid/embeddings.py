"""Embedding maths shared by the engine's callers, the service, evaluation and search: L2 normalisation,
and aggregating several crops of one person (a track) into one embedding."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from reid.errors import ConfigError

_EPS = 1e-12  # a zero row stays zero instead of becoming NaN


def l2_normalize(rows: ArrayLike, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Each row of a (N, D) array scaled to unit L2 norm, as ``dtype`` (zero rows stay zero)."""
    x = np.asarray(rows, dtype=dtype)
    if x.ndim != 2:
        raise ConfigError(f"embeddings must be a 2-d (N, D) array, got shape {x.shape}")
    normalized: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)
    return normalized


def aggregate(features: ArrayLike, weights: ArrayLike | None = None) -> np.ndarray:
    """One embedding for several crops of one track: the normalised (weighted) mean of the normalised crop
    features. Normalising each crop first gives every crop the same say whatever its feature norm; the
    weights (e.g. a detector's quality score, any non-negative scale) let sharp crops count more."""
    unit = l2_normalize(features)
    if len(unit) == 0:
        raise ConfigError("a track needs at least one crop")
    if weights is None:
        w = np.ones(len(unit), dtype=np.float32)
    else:
        w = np.asarray(weights, dtype=np.float32).reshape(-1)
        if w.shape != (len(unit),):
            raise ConfigError(f"got {w.size} weights for {len(unit)} crops")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ConfigError("crop weights must be finite, non-negative and not all zero")
    mean = (w[:, None] * unit).sum(axis=0, keepdims=True)
    if float(np.linalg.norm(mean)) < 1e-6:
        raise ConfigError("the crops of this track cancel out: their mean embedding is zero")
    return l2_normalize(mean)[0]


def aggregate_groups(
    features: ArrayLike, groups: Sequence[Hashable], weights: ArrayLike | None = None
) -> tuple[list[Hashable], np.ndarray]:
    """:func:`aggregate` per group: the groups in order of first appearance, and a (G, D) unit matrix."""
    x = np.asarray(features, dtype=np.float32)
    if len(groups) != len(x):
        raise ConfigError(f"got {len(groups)} group labels for {len(x)} embeddings")
    w = None if weights is None else np.asarray(weights, dtype=np.float32).reshape(-1)
    rows: dict[Hashable, list[int]] = {}
    for row, group in enumerate(groups):
        rows.setdefault(group, []).append(row)
    keys = list(rows)
    if not keys:
        return keys, np.empty((0, x.shape[1] if x.ndim == 2 else 0), dtype=np.float32)
    matrix = np.stack([aggregate(x[idx], None if w is None else w[idx]) for idx in rows.values()])
    return keys, matrix
