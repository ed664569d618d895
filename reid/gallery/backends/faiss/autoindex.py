"""Pick a FAISS index kind from the gallery size and a memory budget, in the spirit of autofaiss.

Rules, first match wins:

1. Exact (``Flat``) while an exhaustive scan stays cheap — at most :data:`EXACT_MAX_SCAN` floats per
   query (100k × 2048) — and the float32 vectors fit the budget.
2. ``IVF{nlist},Flat`` when the float32 vectors fit: uncompressed, so recall is limited by ``nprobe``
   only.
3. ``IVF{nlist},SQ8`` (1 byte per dimension) when that fits.
4. ``IVF{nlist},PQ{m}`` with the largest ``m`` (bytes per vector, a divisor of ``dim``) that fits.

``nlist`` is about ``4·√n`` rounded to a power of two (FAISS's guideline of 4–16·√n, at the cheap end
because training cost grows with it), at least 16 and at most ``n / 39`` so every list trains on 39
points; above 2¹⁶ lists the coarse quantizer becomes an HNSW graph (``IVF{nlist}_HNSW32``) so that
assignment stays fast. Memory estimates add 8 bytes per id and 10% headroom.
"""

from __future__ import annotations

import math

from reid.errors import ConfigError

EXACT_MAX_SCAN = 100_000 * 2048
_ID_BYTES = 8
_HEADROOM = 1.1
_HNSW_QUANTIZER_FROM = 1 << 16
_PQ_SIZES = (64, 48, 32, 24, 16, 12, 8, 4)


def _nlist(n_vectors: int) -> int:
    target = 4 * math.sqrt(n_vectors)
    nlist = 1 << max(4, round(math.log2(target)))
    while nlist > 16 and nlist * 39 > n_vectors:
        nlist //= 2
    return nlist


def _fits(n_vectors: int, code_bytes: float, budget: int) -> bool:
    return n_vectors * (code_bytes + _ID_BYTES) * _HEADROOM <= budget


def choose_index(n_vectors: int, dim: int, memory_budget_bytes: int) -> str:
    """A FAISS factory string for ``n_vectors`` ``dim``-d vectors within ``memory_budget_bytes``.

    Raises :class:`ConfigError` when even the smallest product quantizer does not fit.
    """
    if n_vectors < 1 or dim < 1 or memory_budget_bytes < 1:
        raise ConfigError(
            f"choose_index needs positive sizes, got n={n_vectors}, dim={dim}, budget={memory_budget_bytes}"
        )
    if n_vectors * dim <= EXACT_MAX_SCAN and _fits(n_vectors, 4 * dim, memory_budget_bytes):
        return "Flat"
    nlist = _nlist(n_vectors)
    quantizer = f"IVF{nlist}_HNSW32" if nlist >= _HNSW_QUANTIZER_FROM else f"IVF{nlist}"
    if _fits(n_vectors, 4 * dim, memory_budget_bytes):
        return f"{quantizer},Flat"
    if _fits(n_vectors, dim, memory_budget_bytes):
        return f"{quantizer},SQ8"
    for m in _PQ_SIZES:
        if dim % m == 0 and _fits(n_vectors, m, memory_budget_bytes):
            return f"{quantizer},PQ{m}"
    raise ConfigError(
        f"{n_vectors} vectors of dimension {dim} do not fit in {memory_budget_bytes} bytes "
        f"even with the smallest product quantizer"
    )
