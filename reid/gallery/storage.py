"""The small interface a gallery backend implements: storage only, no semantics.

:class:`reid.gallery.GalleryStore` (the core) owns what a gallery means — identity, validation, upsert by
key, filters per query, re-ranking, hit order, export, stats — and calls a :class:`Storage` for the rest:
rows written atomically with the ids they replace, deletes and scrubbing their bytes, nearest neighbours
and every match under a filter, rows and vectors by id, ids by key, and a retention policy kept with
the data. Ids are positive, assigned by the storage and never reused.

Locking: the core wraps every read in :meth:`Storage.reading` and every write (with the key look-up
that decides it) in :meth:`Storage.writing`; storage methods do not lock again. Both raise
:class:`reid.errors.GalleryError` once the storage is closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from reid.gallery.filters import Filters
from reid.gallery.items import ItemValues
from reid.gallery.retention import RetentionPolicy


@dataclass(frozen=True)
class Identity:
    """What a gallery holds: ``dim``-d embeddings of the model ``fingerprint`` (``None`` until one is
    recorded), searched with ``index`` (in the backend's own terms: a FAISS factory string, a Milvus
    index type)."""

    dim: int
    fingerprint: str | None
    index: str


@dataclass(frozen=True)
class OpenRequest:
    """Which gallery a storage's ``open(request, **backend_options)`` opens: the one at ``location``,
    created when missing with ``dim`` (required then), ``fingerprint`` and ``index`` (``None``: the
    backend's exact index); an existing gallery keeps its own (the core checks dim and fingerprint,
    the backend its index)."""

    location: str | Path
    dim: int | None = None
    fingerprint: str | None = None
    index: str | None = None


@dataclass(frozen=True)
class SearchParams:
    """Backend-specific search knobs; each backend that has some subclasses this (see
    :class:`reid.gallery.backends.faiss.params.FaissSearchParams`) and names the subclass in
    :attr:`Storage.search_params`."""


class Storage(Protocol):
    """Where a gallery's items live. See the module docstring for the division of labour."""

    backend: ClassVar[str]
    """The backend's registry name."""
    search_params: ClassVar[type[SearchParams] | None]
    """The parameter class :meth:`nearest` accepts, ``None`` when the backend has no knobs."""
    text_limits: ClassVar[Mapping[str, int]]
    """The most UTF-8 bytes a text field can hold, by field name (fields not named: unlimited)."""
    max_k: ClassVar[int | None]
    """The most neighbours one query may fetch, ``None``: unbounded."""

    @property
    def where(self) -> str:
        """The gallery, in words, for messages."""
        ...

    @property
    def identity(self) -> Identity: ...

    @property
    def writable(self) -> bool: ...

    @property
    def audit_path(self) -> Path:
        """Where the audit log goes unless the caller names a file (beside the data where it is local)."""
        ...

    def record_fingerprint(self, fingerprint: str) -> None:
        """Record the model of an empty gallery created without one."""
        ...

    @property
    def retention(self) -> RetentionPolicy | None:
        """The retention policy kept with the gallery."""
        ...

    def record_retention(self, policy: RetentionPolicy | None) -> None:
        """Keep ``policy`` with the gallery (``None``: remove it)."""
        ...

    def reading(self) -> AbstractContextManager[None]: ...

    def writing(self) -> AbstractContextManager[None]: ...

    def count(self) -> int: ...

    def write(self, rows: Sequence[ItemValues], vectors: np.ndarray, replaced: Sequence[int]) -> list[int]:
        """Atomically remove the ``replaced`` ids and store ``rows`` with their unit ``vectors``; returns
        the new ids, in order. Durable when it returns."""
        ...

    def delete(self, ids: Sequence[int]) -> None:
        """Remove ``ids`` (sorted, unique, all present) atomically."""
        ...

    def scrub(self) -> None:
        """Leave no deleted item readable in the backend's files now, as far as the backend allows (the
        README says how long each takes)."""
        ...

    def nearest(
        self, queries: np.ndarray, k: int, filters: Filters | None, params: SearchParams | None
    ) -> tuple[np.ndarray, np.ndarray, dict[int, ItemValues]]:
        """Up to ``k`` inner-product neighbours of each query among the items ``filters`` allows:
        ``(scores, ids)`` both (Q, k), padded with ``-inf`` / ``-1``, in any order, plus the rows of any
        of those ids the search returned anyway (the core fetches the others)."""
        ...

    def matching(self, filters: Filters) -> np.ndarray:
        """The ids of every item ``filters`` allows, ascending."""
        ...

    def ids_by_key(self, keys: Sequence[str]) -> dict[str, int]:
        """The ids of the keys that exist."""
        ...

    def rows(self, ids: Iterable[int]) -> dict[int, ItemValues]:
        """The fields of the ids that exist, by id."""
        ...

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids`` (all present), in that order, as a (N, dim) float32 array."""
        ...

    def all_ids(self) -> np.ndarray:
        """Every stored id, ascending (for export)."""
        ...

    def details(self) -> dict[str, Any]:
        """Backend-specific statistics (``GalleryStats.details``)."""
        ...

    def save(self) -> None:
        """Make reopening fast (writes are already durable without it)."""
        ...

    def close(self) -> None: ...
