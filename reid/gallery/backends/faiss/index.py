"""The FAISS side of the gallery: one index over gallery ids, inner product on unit vectors.

* Any FAISS factory string works (``Flat``, ``IVF1024,Flat``, ``HNSW32``, ``IVF4096,PQ64``...). IVF
  indexes keep gallery ids natively (their ``remove_ids`` does not renumber, so an ``IndexIDMap`` over
  them would corrupt); everything else is wrapped in ``IndexIDMap2``.
* Kinds that need training hold their vectors in an exact staging index (``IDMap2,Flat``) until they
  have ``train_size`` vectors (or :meth:`VectorIndex.train` gets a sample); they then train on the first
  ``train_size`` vectors in id order and take the staged vectors over. Searches are exact until then.
* Kinds that cannot remove vectors (HNSW) keep deleted vectors; the store masks them out at search time
  (it sees ``ntotal`` exceed its live count).
* Filters are applied with an ``IDSelectorBitmap`` inside FAISS where the index supports search-time
  selectors. Where it does not (``IndexPQ``, GPU indexes), the search over-fetches and filters the
  candidates: it asks for ``max(4k, k + 64)`` neighbours and quadruples that, up to
  :data:`OVERFETCH_LIMIT`, until ``k`` pass. Recall trade-off: with an approximate index the wider
  candidate lists only cover what ``nprobe``/``efSearch`` visit, and when fewer than ``k`` of the first
  :data:`OVERFETCH_LIMIT` neighbours pass a very selective filter, fewer than ``k`` hits come back.
* Exact search of a few queries (fewer than :data:`BLAS_MAX_QUERIES`) on the CPU is one matrix-vector
  product over FAISS's own storage, done by numpy's multi-threaded BLAS: FAISS scans a single query on
  one thread, and the scan is memory-bound, so using every core makes it about twice as fast. From
  that many queries on FAISS's blocked BLAS path is as good and is used.
* With ``faiss.get_num_gpus() > 0`` (and ``use_gpu`` not false) trained indexes are cloned to GPU 0;
  every call on a GPU index is serialised (FAISS GPU indexes are not thread-safe). The CPU build is
  all that is needed to import this module.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator
from typing import Any, cast

import faiss
import numpy as np

from reid.errors import ConfigError, GalleryError
from reid.gallery.backends.faiss.params import FaissSearchParams
from reid.gallery.ranking import top_k

logger = logging.getLogger(__name__)

# The stubs bundled with faiss lack some classes (SearchParametersHNSW) and GPU attributes.
_faiss: Any = faiss

OVERFETCH_LIMIT = 2048  # also the largest k older FAISS GPU indexes accept
BLAS_MAX_QUERIES = 20  # FAISS's own distance_compute_blas_threshold
_MIN_TRAIN = 1024
_DEFAULT_EF_SEARCH = 64


def _unwrap(index: faiss.Index) -> faiss.Index:
    """The innermost index under ID maps and pre-transforms."""
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexPreTransform | faiss.IndexIDMap | faiss.IndexIDMap2):
        index = faiss.downcast_index(index.index)
    return index


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _hnsw(index: faiss.Index) -> faiss.IndexHNSW | None:
    inner = _unwrap(index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def build_index(factory: str, dim: int) -> faiss.Index:
    """A fresh CPU index for ``factory`` with the inner-product metric, ready for ``add_with_ids``."""
    if factory.upper().startswith("IDMAP"):
        raise ConfigError(f"index {factory!r}: leave out IDMap, the gallery adds it where needed")
    try:
        base = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"invalid FAISS index factory string {factory!r}: {exc}") from exc
    ivf = _ivf(base)
    if ivf is not None:
        # Unit vectors: centroids on the sphere match the inner-product assignment.
        ivf.cp.spherical = True
        ivf.nprobe = max(1, round(math.sqrt(ivf.nlist)))
        pq = faiss.downcast_index(ivf)
        if isinstance(pq, faiss.IndexIVFPQ):
            # Polysemous codes serve only Hamming pre-filtering, which searches here never turn on
            # (polysemous_ht = 0); training them takes minutes at PQ64 and more.
            pq.do_polysemous_training = False  # type: ignore[attr-defined]  # a field the stubs lack
        return base
    hnsw = _hnsw(base)
    if hnsw is not None:
        hnsw.hnsw.efSearch = _DEFAULT_EF_SEARCH
    return faiss.IndexIDMap2(base)


def default_train_size(index: faiss.Index) -> int:
    """Enough points for FAISS's k-means (it wants ≥39 per centroid): 40 per IVF list or PQ centroid."""
    ivf = _ivf(index)
    pq = getattr(_unwrap(ivf if ivf is not None else index), "pq", None)
    centroids = max(ivf.nlist if ivf is not None else 1, pq.ksub if pq is not None else 1)
    return max(40 * centroids, _MIN_TRAIN)


def _stored_ids(index: faiss.Index) -> np.ndarray:
    ivf = _ivf(index)
    if ivf is None:
        id_map = cast(faiss.IndexIDMap, faiss.downcast_index(index)).id_map
        return faiss.vector_to_array(id_map).astype(np.int64)
    lists = ivf.invlists
    assert lists is not None
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
        for i in range(ivf.nlist)
        if lists.list_size(i)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


def _gpu_ivf(index: faiss.Index) -> Any:
    """A GPU IVF index (it has ``nprobe`` but is no ``faiss.IndexIVF``), else ``None``."""
    inner = faiss.downcast_index(index)
    return inner if hasattr(inner, "nprobe") else None


def _exact_index(dim: int) -> faiss.IndexIDMap2:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _flat_view(index: faiss.Index) -> tuple[np.ndarray, np.ndarray] | None:
    """Zero-copy ``(vectors, ids)`` of a CPU ``IDMap2(IndexFlat)``, else ``None``.

    Views into FAISS's buffers: valid until the index next changes (callers hold the read lock).
    """
    outer = faiss.downcast_index(index)
    if not isinstance(outer, faiss.IndexIDMap2):
        return None
    inner = faiss.downcast_index(outer.index)
    if not isinstance(inner, faiss.IndexFlat):
        return None
    n, dim = int(inner.ntotal), int(inner.d)
    if n == 0:
        return np.empty((0, dim), dtype=np.float32), np.empty(0, dtype=np.int64)
    vectors = faiss.rev_swig_ptr(inner.get_xb(), n * dim).reshape(n, dim)
    return vectors, faiss.rev_swig_ptr(outer.id_map.data(), n)


def _blas_search(
    vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product with numpy: FAISS's result layout (-1 ids for missing hits)."""
    scores = queries @ vectors.T  # (Q, n); one GEMV per query, multi-threaded by BLAS
    if allowed is not None:
        usable = np.zeros(len(ids), dtype=bool)
        known = ids < len(allowed)
        usable[known] = allowed[ids[known]]
        scores[:, ~usable] = -np.inf
    return top_k(scores, np.broadcast_to(ids, scores.shape), k)


class VectorIndex:
    """A FAISS index keyed by gallery ids. Not locked for writes: the store serialises them."""

    def __init__(
        self,
        factory: str,
        dim: int,
        *,
        restored: faiss.Index | None = None,
        restored_trained: bool = True,
        train_size: int | None = None,
    ) -> None:
        """A new index for ``factory``, or one ``restored`` from a snapshot (the staging index when
        ``restored_trained`` is false)."""
        if restored is not None and restored.d != dim:
            raise GalleryError(f"index snapshot has dimension {restored.d}, the gallery {dim}")
        self.factory = factory
        self.dim = dim
        fresh = build_index(factory, dim)
        self.train_size = train_size if train_size is not None else default_train_size(fresh)
        if self.train_size < 1:
            raise ConfigError(f"train_size must be positive, got {self.train_size}")
        self._main: faiss.Index = restored if restored is not None and restored_trained else fresh
        self._staging: faiss.IndexIDMap2 | None = None
        if not self._main.is_trained:
            staging = faiss.downcast_index(restored) if restored is not None else _exact_index(dim)
            if not isinstance(staging, faiss.IndexIDMap2):
                raise GalleryError(
                    f"index snapshot of an untrained {factory!r} is not an exact staging index"
                )
            self._staging = staging
        self._selectors_work = True
        self._want_gpu = False
        self._gpu_resources: faiss.StandardGpuResources | None = None
        self._device_lock: threading.Lock | None = None
        self._describe_active()

    def _describe_active(self) -> None:
        """Cache which query-time knobs the active index has (probing raises in C++: not per query)."""
        index = self._active
        ivf = _ivf(index)
        self._nprobe_holder: Any = ivf if ivf is not None else _gpu_ivf(index)
        self._hnsw = _hnsw(index)

    # --- state ----------------------------------------------------------------------------------------

    @property
    def is_trained(self) -> bool:
        return self._staging is None

    @property
    def device(self) -> str:
        return "cpu" if self._gpu_resources is None else "gpu"

    @property
    def _active(self) -> faiss.Index:
        return self._main if self._staging is None else self._staging

    @property
    def ntotal(self) -> int:
        return int(self._active.ntotal)

    @contextlib.contextmanager
    def _device(self) -> Iterator[None]:
        if self._device_lock is None:
            yield
            return
        with self._device_lock:
            yield

    def ids(self) -> np.ndarray:
        """Every id the index holds (including deleted ones an index kind could not remove)."""
        return _stored_ids(self.cpu_index())

    def cpu_index(self) -> faiss.Index:
        """The active index on the CPU (a copy when it lives on a GPU)."""
        if self._gpu_resources is None or self._staging is not None:
            return self._active
        with self._device():
            return faiss.index_gpu_to_cpu(self._main)

    # --- writes ---------------------------------------------------------------------------------------

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        with self._device():
            self._active.add_with_ids(vectors, ids)
        if self._staging is not None and self._staging.ntotal >= self.train_size:
            self._train_from_staging(None)

    def train(self, sample: np.ndarray) -> None:
        """Train on ``sample`` (unit vectors) instead of waiting for ``train_size`` added vectors."""
        if self.is_trained:
            raise GalleryError(f"index {self.factory!r} is already trained")
        self._train_from_staging(sample)

    def _train_from_staging(self, sample: np.ndarray | None) -> None:
        assert self._staging is not None
        staged_ids = faiss.vector_to_array(self._staging.id_map).astype(np.int64)
        staged = faiss.downcast_index(self._staging.index).reconstruct_n(0, self._staging.ntotal)
        if sample is None:
            sample = staged[np.argsort(staged_ids, kind="stable")[: self.train_size]]
        logger.info("training index %s on %d vectors", self.factory, len(sample))
        try:
            self._main.train(sample)
        except RuntimeError as exc:
            raise GalleryError(f"cannot train index {self.factory!r}: {exc}") from exc
        self._main.add_with_ids(staged, staged_ids)
        self._staging = None
        self._describe_active()
        if self._want_gpu:
            self._move_to_gpu()

    def remove(self, ids: np.ndarray) -> None:
        """Remove ``ids``. Kinds that cannot (HNSW, some GPU indexes) keep them: the index then holds
        more vectors than the gallery and the store masks the extra ones out at search time."""
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        try:
            with self._device():
                self._active.remove_ids(selector)
        except RuntimeError as exc:
            logger.debug("index %s keeps deleted vectors: %s", self.factory, exc)

    # --- search ---------------------------------------------------------------------------------------

    def _params(self, knobs: FaissSearchParams, selector: faiss.IDSelector | None) -> Any:
        """Per-call parameters (thread-safe, unlike setting ``nprobe`` on the shared index), or ``None``
        where there is nothing to pass: some kinds (``IndexPQ``) refuse any parameters."""
        params: Any
        if self._nprobe_holder is not None:
            params = faiss.SearchParametersIVF()
            params.nprobe = knobs.nprobe or self._nprobe_holder.nprobe
        elif self._hnsw is not None:
            params = _faiss.SearchParametersHNSW()
            params.efSearch = knobs.ef_search or self._hnsw.hnsw.efSearch
        elif selector is not None:
            params = faiss.SearchParameters()
        else:
            return None
        if selector is not None:
            params.sel = selector
        return params

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None, knobs: FaissSearchParams
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids (Q, k), best first; missing results have id -1.

        ``allowed`` is a boolean mask indexed by id (``None``: no restriction).
        """
        if len(queries) < BLAS_MAX_QUERIES and self._gpu_resources is None:
            flat = _flat_view(self._active)
            if flat is not None:
                return _blas_search(*flat, queries, k, allowed)
        if allowed is not None and self._selectors_work:
            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
            try:
                return self._search(queries, k, self._params(knobs, selector))
            except RuntimeError as exc:
                logger.info("index %s has no search-time selectors (%s); over-fetching", self.factory, exc)
                self._selectors_work = False
        params = self._params(knobs, None)
        if allowed is None:
            return self._search(queries, k, params)
        return self._search_overfetch(queries, k, params, allowed)

    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        with self._device():
            scores, ids = self._active.search(queries, k, params=params)
        return scores, ids

    def _search_overfetch(
        self, queries: np.ndarray, k: int, params: Any, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        limit = max(min(self.ntotal, OVERFETCH_LIMIT), 1)
        fetch = min(max(4 * k, k + 64), limit)
        while True:
            scores, ids = self._search(queries, fetch, params)
            known = (ids >= 0) & (ids < len(allowed))
            keep = known.copy()
            keep[known] = allowed[ids[known]]
            if fetch >= limit or (keep.sum(axis=1) >= k).all():
                break
            fetch = min(4 * fetch, limit)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            kept = np.flatnonzero(keep[row])[:k]
            out_scores[row, : len(kept)] = scores[row, kept]
            out_ids[row, : len(kept)] = ids[row, kept]
        return out_scores, out_ids

    # --- device ---------------------------------------------------------------------------------------

    def use_gpu(self, use_gpu: bool | None) -> None:
        """Put the index on GPU 0 when FAISS sees a GPU and ``use_gpu`` is not ``False`` (an index still
        training moves once trained). ``use_gpu=True`` without a GPU raises :class:`ConfigError`; a kind
        FAISS cannot clone to GPU stays on the CPU with a warning."""
        gpus = faiss.get_num_gpus()
        if use_gpu is True and gpus == 0:
            raise ConfigError("use_gpu=True but FAISS sees no GPU (is faiss-gpu installed?)")
        self._want_gpu = use_gpu is not False and gpus > 0
        if self._want_gpu and self._staging is None:
            self._move_to_gpu()

    def _move_to_gpu(self) -> None:
        resources = faiss.StandardGpuResources()
        try:
            self._main = faiss.index_cpu_to_gpu(resources, 0, self._main)
        except (RuntimeError, AttributeError) as exc:
            logger.warning("index %s stays on the CPU: %s", self.factory, exc)
            return
        self._gpu_resources = resources
        self._device_lock = threading.Lock()
        # FAISS's GPU indexes ignore SearchParameters.sel without an error (only its cuVS build applies
        # it), so a filter on the GPU must never rely on a selector: over-fetch and filter instead.
        self._selectors_work = False
        self._describe_active()
