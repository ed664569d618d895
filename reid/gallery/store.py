"""The gallery interface: value types and the :class:`GalleryStore` protocol.

Nothing here knows about FAISS or SQLite, so another backend (Milvus) can implement the same protocol.
Vectors are L2-normalised float32 embeddings and scores are inner products (cosine similarity).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reid.errors import ConfigError
from reid.gallery.rerank import RerankConfig

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self


@dataclass(frozen=True, eq=False)
class GalleryItem:
    """One crop to store. ``key`` is the caller's unique identifier (needed for upsert).

    ``timestamp`` is POSIX seconds; ``metadata`` must be JSON-serialisable. Equality is identity: the
    vector is an array, which has no single truth value.
    """

    vector: np.ndarray
    key: str | None = None
    person_id: int | None = None
    camera_id: int | None = None
    source: str | None = None
    timestamp: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class GalleryRecord:
    """A stored item as :meth:`GalleryStore.get` returns it: its gallery ``id`` plus what was added."""

    id: int
    vector: np.ndarray
    key: str | None
    person_id: int | None
    camera_id: int | None
    source: str | None
    timestamp: float | None
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class Hit:
    """One search result. ``score`` is the inner product (cosine similarity; higher is closer), or
    ``1 - re-ranked distance`` when the search re-ranks."""

    id: int
    score: float
    key: str | None
    person_id: int | None
    camera_id: int | None
    source: str | None
    timestamp: float | None
    metadata: Mapping[str, Any] = field(hash=False)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "metadata": dict(self.metadata)}


def _int_set(values: Iterable[int] | None) -> frozenset[int] | None:
    return None if values is None else frozenset(int(v) for v in values)


@dataclass(frozen=True)
class Filters:
    """Search-time restrictions; every condition that is set must hold (AND).

    * ``cameras_in``: keep only these cameras (items without a camera are dropped).
    * ``cameras_not_in``: drop these cameras (items without a camera are kept).
    * ``person_ids``: keep only these persons.
    * ``exclude_camera``: the query's own camera, for ``exclude_same_camera``; items from it are dropped.
    * ``time_from`` / ``time_to``: inclusive POSIX-seconds bounds; items without a timestamp are dropped
      when either bound is set.

    Any collection is accepted for the id sets; they are stored as frozensets so filters are hashable.
    """

    cameras_in: Collection[int] | None = None
    cameras_not_in: Collection[int] | None = None
    person_ids: Collection[int] | None = None
    exclude_camera: int | None = None
    time_from: float | None = None
    time_to: float | None = None

    def __post_init__(self) -> None:
        for name in ("cameras_in", "cameras_not_in", "person_ids"):
            object.__setattr__(self, name, _int_set(getattr(self, name)))
        if self.time_from is not None and self.time_to is not None and self.time_from > self.time_to:
            raise ConfigError(f"time_from ({self.time_from}) is after time_to ({self.time_to})")

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__dataclass_fields__)

    @property
    def excluded_cameras(self) -> frozenset[int]:
        """``cameras_not_in`` plus ``exclude_camera``."""
        excluded = frozenset(self.cameras_not_in or ())
        return excluded | {self.exclude_camera} if self.exclude_camera is not None else excluded


def group_queries(filters: Filters | Sequence[Filters] | None, n: int) -> dict[Filters | None, list[int]]:
    """Rows of ``n`` queries by their filter (one :class:`Filters` for all, or one per query), so a store
    pays once per distinct filter."""
    if filters is None or isinstance(filters, Filters):
        return {filters: list(range(n))}
    if len(filters) != n:
        raise ConfigError(f"got {len(filters)} filters for {n} queries; give one Filters or one per query")
    groups: dict[Filters | None, list[int]] = defaultdict(list)
    for row, f in enumerate(filters):
        groups[f].append(row)
    return groups


@dataclass(frozen=True)
class GalleryStats:
    """What ``reid gallery stats`` prints."""

    count: int
    dim: int
    fingerprint: str | None
    index: str
    trained: bool
    index_vectors: int
    device: str
    disk_bytes: int
    last_seq: int
    snapshot_seq: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GalleryStore(Protocol):
    """A durable vector store with metadata.

    Writes are atomic per call and durable once they return. ``fingerprint`` arguments, when given, must
    equal the gallery's model fingerprint (:class:`reid.errors.ModelMismatch` otherwise); vectors of the
    wrong dimension raise ``ModelMismatch`` too.
    """

    @classmethod
    def open(cls, location: str | Path, *, dim: int | None = None, fingerprint: str | None = None) -> Self:
        """Open the gallery at ``location``, creating it when missing (``dim`` is then required)."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> str | None: ...

    @property
    def index_kind(self) -> str:
        """The index in use, in the backend's own terms (a FAISS factory string, a Milvus index type)."""
        ...

    def add(self, items: Sequence[GalleryItem], *, fingerprint: str | None = None) -> list[int]:
        """Store new items and return their ids. A key that already exists raises ``GalleryError``."""
        ...

    def upsert(self, items: Sequence[GalleryItem], *, fingerprint: str | None = None) -> list[int]:
        """Insert or replace items by key (every item needs a key) and return their ids."""
        ...

    def delete(self, ids: Iterable[int]) -> None:
        """Remove items; an unknown id raises :class:`reid.errors.NotFound` and nothing is removed."""
        ...

    def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that the gallery holds."""
        ...

    def lookup(self, keys: Iterable[str]) -> list[int]:
        """The ids of these keys; an unknown key raises :class:`reid.errors.NotFound`."""
        ...

    def get(self, ids: Iterable[int]) -> list[GalleryRecord]:
        """The stored items, in the order asked; an unknown id raises :class:`reid.errors.NotFound`."""
        ...

    def count(self) -> int: ...

    def search(
        self,
        vectors: np.ndarray,
        k: int = 10,
        filters: Filters | Sequence[Filters] | None = None,
        *,
        fingerprint: str | None = None,
        rerank: RerankConfig | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits per query row of ``vectors`` (Q, dim), best first (scores within
        :data:`~reid.gallery.ranking.SCORE_TIE_TOLERANCE` tie: lower id first).

        ``filters`` is one :class:`Filters` for the whole batch or one per query. ``rerank`` re-orders
        each query's top ``rerank.top_n`` candidates by k-reciprocal distance; ``Hit.score`` is then
        ``1 -`` that distance.
        """
        ...

    def stats(self) -> GalleryStats: ...

    def export(self, out_dir: str | Path) -> Path:
        """Write ``vectors.npy`` (id order), ``items.jsonl`` and ``gallery.json`` under ``out_dir``."""
        ...

    def save(self) -> None:
        """Make reopening fast (writes are already durable without it)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
