"""The order of search hits: best score first, equal scores by id — where "equal" tolerates float noise.

The same two vectors can score a few ulps apart depending on where they sit in a BLAS/SIMD kernel: OpenBLAS's
AVX512 SGEMM computes its last, partial block of columns in another accumulation order than the rest, so five
identical gallery vectors scored against one query came out as four ties and one winner on AVX512 hosts
and as five exact ties on AVX2 hosts. Comparing scores exactly would make the order of equal hits depend on
the CPU. Scores that agree within :data:`SCORE_TIE_TOLERANCE` are therefore ties, and ties go to the lower
id (the item added first), on every machine and every backend.

Ties are found between neighbours in score order, so a run of scores each within the tolerance of the next
is one tie group; for cosine scores of real embeddings neighbouring top-k scores are orders of magnitude
further apart, so this only ever joins (near-)duplicates. Within a group the reported scores may therefore
rise by up to the tolerance from one hit to the next.
"""

from __future__ import annotations

import numpy as np

# Far above float32 rounding of a 2048-d unit inner product (~1e-7 typical, ~1e-6 at worst in practice),
# far below any score difference that means something for re-identification.
SCORE_TIE_TOLERANCE = 1e-5


def best_first(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Indices that put ``scores``/``ids`` (1-d, same length) best first, ties by lower id."""
    by_score = np.lexsort((ids, -scores))
    if len(by_score) < 2:
        return by_score
    ranked = scores[by_score]
    tie_group = np.concatenate(([0], np.cumsum(ranked[:-1] - ranked[1:] > SCORE_TIE_TOLERANCE)))
    return by_score[np.lexsort((ids[by_score], tie_group))]


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row of ``scores``/``ids`` (2-d), in :func:`best_first` order.

    Padding follows FAISS (id -1, score -inf). Candidates tied with the ``k``-th best within the tolerance
    all compete, so which of several equal items make the cut does not depend on the kernel either.
    """
    rows = len(scores)
    out_scores = np.full((rows, k), -np.inf, dtype=np.float32)
    out_ids = np.full((rows, k), -1, dtype=np.int64)
    for row in range(rows):
        found = np.flatnonzero(np.isfinite(scores[row]) & (ids[row] >= 0))
        if len(found) > k:
            kth = np.partition(scores[row, found], len(found) - k)[len(found) - k]
            found = found[scores[row, found] >= kth - SCORE_TIE_TOLERANCE]
        order = found[best_first(scores[row, found], ids[row, found])][:k]
        out_scores[row, : len(order)] = scores[row, order]
        out_ids[row, : len(order)] = ids[row, order]
    return out_scores, out_ids
