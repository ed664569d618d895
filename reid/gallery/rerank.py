"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li: "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), as a pure numpy function.

For each image p (queries and gallery alike):

1. ``N(p, k)``: p and its k nearest neighbours. ``R(p, k)``: the members of ``N(p, k)`` whose own
   ``N(·, k)`` contains p (k-reciprocal neighbours; p itself included).
2. ``R*(p, k1)``: ``R(p, k1)`` plus, for every ``q`` in it, ``R(q, round(k1/2))`` when more than 2/3 of
   that smaller set lies in ``R(p, k1)`` (strictly more, as the authors' released code; the paper
   writes "at least").
3. ``V_p``: a vector over all images, ``exp(-d(p, g))`` on ``R*(p, k1)`` and 0 elsewhere, scaled to sum
   to 1; then local query expansion replaces it by the mean of ``V`` over ``N(p, k2 - 1)`` (the k2
   nearest, p included; ``k2=1`` disables it).
4. Jaccard distance ``d_J(p, g) = 1 - Σ min(V_p, V_g) / Σ max(V_p, V_g)``, and the final distance
   ``(1 - λ) d_J + λ d``.

Inputs are **distances** (smaller is closer). For L2-normalised embeddings pass squared Euclidean
distances, ``2 - 2·cos`` (:func:`cosine_to_sq_euclidean`): that is what the authors' code computes (it
squares the Euclidean distances it receives). Each row of the joint distance matrix is divided by its
maximum before use, as in the authors' code, so ``exp(-d)`` sees values in [0, 1].

Cost: O(n²) memory for n = Q + G (three float32 n×n arrays) — meant for a query batch against its
top-N candidates, or for an evaluation split (Market-1501: n ≈ 19k, about 4.5 GB).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reid.errors import ConfigError


@dataclass(frozen=True)
class RerankConfig:
    """Re-ranking of a search: the paper's defaults; ``top_n`` candidates per query are re-ranked."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    top_n: int = 100

    def __post_init__(self) -> None:
        if self.k1 < 1 or self.k2 < 1 or self.top_n < 1:
            raise ConfigError(f"re-ranking needs k1, k2, top_n >= 1, got {self}")
        if not 0.0 <= self.lambda_value <= 1.0:
            raise ConfigError(f"lambda_value must be in [0, 1], got {self.lambda_value}")


def cosine_to_sq_euclidean(similarity: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance between unit vectors from their cosine similarity."""
    return np.maximum(2.0 - 2.0 * np.asarray(similarity, dtype=np.float32), 0.0)


def _nearest(dist: np.ndarray, m: int, chunk: int = 1024) -> np.ndarray:
    """Indices of the ``m`` smallest entries of each row, nearest first (ties: lower index first).

    Row chunks keep the temporary index arrays of ``argpartition`` small.
    """
    n = dist.shape[1]
    out = np.empty((len(dist), min(m, n)), dtype=np.int64)
    for start in range(0, len(dist), chunk):
        rows = dist[start : start + chunk]
        if m >= n:
            out[start : start + chunk] = np.argsort(rows, axis=1, kind="stable")
            continue
        part = np.argpartition(rows, m - 1, axis=1)[:, :m]
        part.sort(axis=1)  # ascending index, so the stable sort below breaks ties by index
        order = np.argsort(np.take_along_axis(rows, part, axis=1), axis=1, kind="stable")
        out[start : start + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def _reciprocal(neighbours: np.ndarray) -> list[np.ndarray]:
    """For each row p, the members of ``neighbours[p]`` whose own row contains p."""
    n = len(neighbours)
    back = neighbours[neighbours]  # (n, m, m): the neighbour lists of p's neighbours
    mutual = (back == np.arange(n)[:, None, None]).any(axis=2)
    return [neighbours[p][mutual[p]] for p in range(n)]


def _encode(dist: np.ndarray, nearest: np.ndarray, k1: int) -> np.ndarray:
    """The k-reciprocal feature ``V`` (n, n): Gaussian weights on each row's expanded set."""
    n = len(dist)
    full = _reciprocal(nearest[:, : k1 + 1])
    half = _reciprocal(nearest[:, : round(k1 / 2) + 1])
    features = np.zeros((n, n), dtype=np.float32)
    for p in range(n):
        members = full[p]
        expanded = [members]
        for q in members:
            candidate = half[q]
            if len(np.intersect1d(candidate, members, assume_unique=True)) > 2 / 3 * len(candidate):
                expanded.append(candidate)
        support = np.unique(np.concatenate(expanded))
        weights = np.exp(-dist[p, support])
        features[p, support] = weights / weights.sum()
    return features


def _expand(features: np.ndarray, nearest: np.ndarray, k2: int, chunk: int = 256) -> np.ndarray:
    """Local query expansion: each row becomes the mean of its ``k2`` nearest rows (itself included)."""
    if k2 == 1:
        return features
    expanded = np.empty_like(features)
    for start in range(0, len(features), chunk):
        rows = nearest[start : start + chunk, :k2]
        expanded[start : start + chunk] = features[rows].mean(axis=1)
    return expanded


def _jaccard(features: np.ndarray, n_query: int) -> np.ndarray:
    """``d_J`` between each query row and each gallery row, using the rows' sparsity."""
    gallery_t = np.ascontiguousarray(features[n_query:].T)  # (n, G): gather a query's support fast
    gallery_mass = gallery_t.sum(axis=0)
    out = np.empty((n_query, features.shape[0] - n_query), dtype=np.float32)
    for p in range(n_query):
        support = np.flatnonzero(features[p])
        overlap = np.minimum(gallery_t[support], features[p, support, None]).sum(axis=0)
        union = features[p].sum() + gallery_mass - overlap
        out[p] = 1.0 - overlap / np.maximum(union, np.finfo(np.float32).tiny)
    return out


def k_reciprocal_rerank(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """Re-ranked query-gallery distances (Q, G), smaller is closer.

    ``q_g_dist`` (Q, G), ``q_q_dist`` (Q, Q) and ``g_g_dist`` (G, G) are distances (see the module
    docstring: squared Euclidean for unit embeddings). ``k1``/``k2`` larger than the number of images
    use them all.
    """
    q_g = np.asarray(q_g_dist, dtype=np.float32)
    n_query, n_gallery = q_g.shape
    if np.shape(q_q_dist) != (n_query, n_query) or np.shape(g_g_dist) != (n_gallery, n_gallery):
        raise ConfigError(
            f"re-ranking needs q_q ({n_query}, {n_query}) and g_g ({n_gallery}, {n_gallery}) distances, "
            f"got {np.shape(q_q_dist)} and {np.shape(g_g_dist)}"
        )
    RerankConfig(k1=k1, k2=k2, lambda_value=lambda_value)  # validates the parameters
    dist = np.block([[np.asarray(q_q_dist, dtype=np.float32), q_g], [q_g.T, np.asarray(g_g_dist)]])
    dist = dist.astype(np.float32, copy=False)
    row_max = dist.max(axis=1, keepdims=True)
    dist /= np.where(row_max > 0, row_max, 1.0)
    nearest = _nearest(dist, min(max(k1 + 1, k2), len(dist)))
    features = _expand(_encode(dist, nearest, k1), nearest, k2)
    jaccard = _jaccard(features, n_query)
    return (1.0 - lambda_value) * jaccard + lambda_value * dist[:n_query, n_query:]


def rerank_unit_vectors(queries: np.ndarray, gallery: np.ndarray, config: RerankConfig) -> np.ndarray:
    """Re-ranked distances (Q, G) between unit-vector ``queries`` and ``gallery`` rows, from their squared
    Euclidean distances as the paper computes them."""
    return k_reciprocal_rerank(
        cosine_to_sq_euclidean(queries @ gallery.T),
        cosine_to_sq_euclidean(queries @ queries.T),
        cosine_to_sq_euclidean(gallery @ gallery.T),
        k1=config.k1,
        k2=config.k2,
        lambda_value=config.lambda_value,
    )


def rerank_candidates(
    queries: np.ndarray, ids: np.ndarray, vectors_of: Callable[[list[int]], np.ndarray], config: RerankConfig
) -> np.ndarray:
    """Re-ranked scores (``1 -`` re-ranked distance) for each query's candidate ``ids`` (Q, N; -1 pads).

    ``queries`` are unit rows (Q, D); ``vectors_of(sorted_ids)`` returns the stored unit vectors of those
    gallery ids, in that order. The queries and the union of their candidates form one re-ranking
    problem; padded slots score ``-inf``. Any store can re-rank this way once it has the candidates.
    """
    candidates = np.unique(ids[ids >= 0])
    if not len(candidates):
        return np.full(ids.shape, -np.inf, dtype=np.float32)
    distances = rerank_unit_vectors(queries, vectors_of(candidates.tolist()), config)
    columns = np.searchsorted(candidates, np.maximum(ids, 0))
    reranked = 1.0 - np.take_along_axis(distances, columns, axis=1)
    return np.where(ids >= 0, reranked, -np.inf).astype(np.float32)
