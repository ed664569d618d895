"""The gallery core: what a gallery means, the same on every backend.

:class:`GalleryStore` owns identity (dimension, model fingerprint, the first fingerprint recorded while
empty), validation (unit vectors, keys, field values, the backend's text limits), upsert by key,
filters (one backend call per distinct filter), k-reciprocal re-ranking (each query on its own),
the order of hits (:func:`~reid.gallery.ranking.best_first`), erasure by filter, retention, the audit
log, export and stats. A backend only stores: see :class:`~reid.gallery.storage.Storage`. Vectors are
L2-normalised float32 embeddings and scores are inner products (cosine similarity).

Every action takes an optional ``actor`` (:class:`~reid.gallery.audit.Actor`: who, through what) for
the audit log; without one it is the process's (the CLI names its command).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from reid.errors import ConfigError, GalleryError, ModelMismatch, NotFound
from reid.gallery.audit import Actor, AuditLog, process_actor
from reid.gallery.filters import Filters, group_queries
from reid.gallery.items import (
    KEY_FIELD,
    GalleryItem,
    GalleryRecord,
    Hit,
    ItemValues,
    check_text_lengths,
    item_values,
)
from reid.gallery.ranking import best_first
from reid.gallery.rerank import RerankConfig, rerank_candidates
from reid.gallery.retention import RetentionPolicy, expired_ids
from reid.gallery.storage import SearchParams, Storage
from reid.gallery.vectors import as_unit_matrix, check_fingerprint, check_k, export_dir, item_matrix

logger = logging.getLogger(__name__)

EXPORT_CHUNK = 1000  # items per storage read while exporting
GroupBy = Literal["track_id", "person_id"]
GROUP_FIELDS: tuple[GroupBy, ...] = get_args(GroupBy)
# Candidates fetched per wanted group in a grouped search's first round (a person seldom has more crops
# among a query's nearest neighbours); later rounds fetch four times as many.
GROUP_FETCH = 8


@dataclass(frozen=True)
class GalleryStats:
    """What ``reid gallery stats`` and ``GET /gallery/stats`` report: the fields every backend has, and
    ``details`` in the backend's own terms (FAISS: training, device, snapshot; Milvus: its id counter)."""

    backend: str
    count: int
    dim: int
    fingerprint: str | None
    index: str
    details: Mapping[str, Any] = field(default_factory=dict)
    retention: Sequence[Mapping[str, Any]] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "details": dict(self.details), "retention": [dict(p) for p in self.retention]}


@dataclass(frozen=True)
class Erasure:
    """What an erasure or a retention sweep did: ``matched`` items, ``erased`` (0 on a dry run)."""

    matched: int
    erased: int
    dry_run: bool


@dataclass(frozen=True)
class _Plan:
    """How one search fetches candidates for a set of queries that share a filter."""

    fetch: int
    k: int
    filters: Filters | None
    rerank: RerankConfig | None
    params: SearchParams | None


def _unique_ids(ids: Iterable[int]) -> list[int]:
    return sorted({int(i) for i in ids})


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best ``(id, score)`` of one query's candidates (``-1`` ids pad), best first."""
    found = ids >= 0
    scores, ids = scores[found], ids[found]
    return [(int(ids[i]), float(scores[i])) for i in best_first(scores, ids)[:k]]


def _hits(top: list[tuple[int, float]], rows: Mapping[int, ItemValues]) -> list[Hit]:
    missing = [i for i, _ in top if i not in rows]
    if missing:
        raise GalleryError(f"index and metadata disagree: ids {missing[:10]} have no metadata row")
    return [Hit(id=i, score=score, **rows[i]) for i, score in top]


def _not_found(what: str, missing: Sequence[Any]) -> NotFound:
    return NotFound(f"no gallery item with {what} {', '.join(map(repr, missing[:10]))}")


@dataclass(frozen=True)
class StoreOptions:
    """How a store audits and retains, beyond what its storage keeps: ``audit_log`` (``None``: the
    storage's default place), ``audit_searches`` (a line per search and read too), ``retention`` (a
    policy applied besides the one kept with the gallery), ``sweep_on_open`` (apply the policies as a
    writable store opens; off for a command that is about to change them) and ``clock`` (POSIX
    seconds; tests control it)."""

    audit_log: str | Path | None = None
    audit_searches: bool = False
    retention: RetentionPolicy | None = None
    sweep_on_open: bool = True
    clock: Callable[[], float] = time.time


class GalleryStore:
    """A durable vector store with metadata, over one backend's :class:`Storage`.

    Writes are atomic per call and durable once they return. ``fingerprint`` arguments, when given, must
    equal the gallery's model fingerprint (:class:`ModelMismatch` otherwise); vectors of the wrong
    dimension raise ``ModelMismatch`` too. Open one with :func:`reid.gallery.open_gallery`. A writable
    store applies its retention policies as it opens.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        dim: int | None = None,
        fingerprint: str | None = None,
        options: StoreOptions | None = None,
    ) -> None:
        """Wrap ``storage``, checking that it holds ``dim``-d embeddings of ``fingerprint`` (when given)."""
        self.storage = storage
        self.options = options if options is not None else StoreOptions()
        self._audit: AuditLog | None = None
        try:
            self._check_identity(dim, fingerprint)
            self._audit = self._open_audit()
            policies = self.retention_policies() if storage.writable and self.options.sweep_on_open else []
            if policies:
                self.sweep(policies=policies, actor=Actor(via="gallery open"))
        except BaseException:
            self.close()
            raise

    def _open_audit(self) -> AuditLog | None:
        path = self.options.audit_log or self.storage.audit_path
        try:
            return AuditLog(path, gallery=self.storage.where, clock=self.options.clock)
        except GalleryError:
            if self.storage.writable:
                raise
            logger.warning(
                "%s is open read-only and its audit log %s is not writable: not audited", self, path
            )
            return None

    def _record(self, action: str, actor: Actor | None, *, sync: bool = True, **details: Any) -> None:
        if self._audit is not None:
            self._audit.record(action, actor or process_actor(), sync=sync, **details)

    def _check_identity(self, dim: int | None, fingerprint: str | None) -> None:
        where = self.storage.where
        if dim is not None and dim != self.dim:
            raise ModelMismatch(f"{where} holds {self.dim}-d embeddings, not {dim}-d")
        if fingerprint is None or fingerprint == self.fingerprint:
            return
        if self.fingerprint is None and self.storage.writable and self.count() == 0:
            self.storage.record_fingerprint(fingerprint)
            return
        raise ModelMismatch(f"{where} was built with model {self.fingerprint!r}, not {fingerprint!r}")

    # --- identity -------------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self.storage.backend

    @property
    def dim(self) -> int:
        return self.storage.identity.dim

    @property
    def fingerprint(self) -> str | None:
        return self.storage.identity.fingerprint

    @property
    def audit_path(self) -> Path | None:
        """The audit log's file (``None``: a read-only open that cannot write one)."""
        return None if self._audit is None else self._audit.path

    @property
    def index_kind(self) -> str:
        """The index in use, in the backend's own terms (a FAISS factory string, a Milvus index type)."""
        return self.storage.identity.index

    # --- writes ---------------------------------------------------------------------------------------

    def _write(
        self, items: Sequence[GalleryItem], fingerprint: str | None, *, replace: bool, actor: Actor | None
    ) -> list[int]:
        check_fingerprint(self.fingerprint, fingerprint)
        items = list(items)
        if not items:
            return []
        vectors = item_matrix(items, self.dim)
        now = self.options.clock()
        rows = [item_values(item, inserted_at=now) for item in items]
        for row in rows:
            check_text_lengths(row, self.storage.text_limits, self.backend)
        keys = [row[KEY_FIELD] for row in rows if row[KEY_FIELD] is not None]
        repeated = [key for key, n in Counter(keys).items() if n > 1]
        if repeated:
            raise GalleryError(f"key {repeated[0]!r} appears more than once in one write")
        with self.storage.writing():
            held = self.storage.ids_by_key(keys)
            if held and not replace:
                key = next(key for key in keys if key in held)
                raise GalleryError(f"key {key!r} already exists (id {held[key]}); use upsert to replace it")
            ids = self.storage.write(rows, vectors, sorted(held.values()))
        self._record("upsert" if replace else "add", actor, count=len(ids), replaced=len(held))
        return ids

    def add(
        self, items: Sequence[GalleryItem], *, fingerprint: str | None = None, actor: Actor | None = None
    ) -> list[int]:
        """Store new items and return their ids. A key that already exists raises ``GalleryError``."""
        return self._write(items, fingerprint, replace=False, actor=actor)

    def upsert(
        self, items: Sequence[GalleryItem], *, fingerprint: str | None = None, actor: Actor | None = None
    ) -> list[int]:
        """Insert or replace items by key (every item needs a key) and return their ids. A replaced item
        gets a new id: ids are never reused."""
        missing = [i for i, item in enumerate(items) if item.key is None]
        if missing:
            raise GalleryError(f"upsert needs a key on every item; item {missing[0]} has none")
        return self._write(items, fingerprint, replace=True, actor=actor)

    def delete(self, ids: Iterable[int], *, actor: Actor | None = None) -> None:
        """Remove items from searches and reads; an unknown id raises :class:`NotFound` and nothing is
        removed. Their bytes leave the files at the next checkpoint and snapshot (see :meth:`erase` for
        at once)."""
        unique = _unique_ids(ids)
        if not unique:
            return
        with self.storage.writing():
            found = self.storage.rows(unique)
            missing = [i for i in unique if i not in found]
            if missing:
                raise _not_found("id", missing)
            self.storage.delete(unique)
        self._record("delete", actor, count=len(unique), ids=unique)

    # --- erasure and retention ------------------------------------------------------------------------

    def _selecting(self, *, dry_run: bool) -> AbstractContextManager[None]:
        """The lock an erasure holds: a dry run only reads (so it also works on a read-only open)."""
        return self.storage.reading() if dry_run else self.storage.writing()

    def _remove(self, ids: np.ndarray, *, dry_run: bool) -> Erasure:
        """Caller holds :meth:`_selecting`: delete ``ids`` and scrub their bytes from the files."""
        if not dry_run and len(ids):
            self.storage.delete(ids.tolist())
            self.storage.scrub()
        return Erasure(matched=len(ids), erased=0 if dry_run else len(ids), dry_run=dry_run)

    def erase(self, filters: Filters, *, dry_run: bool = False, actor: Actor | None = None) -> Erasure:
        """Remove every item ``filters`` allows, and leave none of their bytes readable in the backend's
        files (as far as it allows: see the README). ``dry_run`` counts them and removes nothing."""
        if filters.is_empty:
            raise ConfigError("an erasure needs a filter: an empty one would match every item")
        with self._selecting(dry_run=dry_run):
            erasure = self._remove(self.storage.matching(filters), dry_run=dry_run)
        self._record("erase", actor, filter=filters.as_dict(), **asdict(erasure))
        return erasure

    @property
    def retention(self) -> RetentionPolicy | None:
        """The retention policy kept with the gallery."""
        with self.storage.reading():
            return self.storage.retention

    def set_retention(self, policy: RetentionPolicy | None, *, actor: Actor | None = None) -> None:
        """Keep ``policy`` with the gallery (``None``: remove it); every writer applies it from then on.
        Call :meth:`sweep` to apply it now."""
        with self.storage.writing():
            self.storage.record_retention(policy)
        self._record("retention_policy", actor, policy=None if policy is None else policy.as_dict())

    def retention_policies(self) -> list[RetentionPolicy]:
        """The policies in force: the one kept with the gallery and the one this store was opened with."""
        return [p for p in (self.retention, self.options.retention) if p is not None]

    def sweep(
        self,
        *,
        dry_run: bool = False,
        policies: Sequence[RetentionPolicy] | None = None,
        actor: Actor | None = None,
    ) -> Erasure:
        """Erase what ``policies`` (default: :meth:`retention_policies`) have expired, as :meth:`erase`
        does; without a policy, nothing (and no audit line)."""
        policies = self.retention_policies() if policies is None else list(policies)
        if not policies:
            return Erasure(matched=0, erased=0, dry_run=dry_run)
        now = self.options.clock()
        with self._selecting(dry_run=dry_run):
            expired = np.zeros(0, dtype=np.int64)
            for policy in policies:
                expired = np.union1d(expired, expired_ids(self.storage, policy, now))
            erasure = self._remove(expired, dry_run=dry_run)
        cutoffs = [{**policy.as_dict(), "cutoff": policy.cutoff(now)} for policy in policies]
        self._record("retention", actor, policies=cutoffs, **asdict(erasure))
        return erasure

    # --- reads ----------------------------------------------------------------------------------------

    def count(self) -> int:
        with self.storage.reading():
            return self.storage.count()

    def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that the gallery holds."""
        with self.storage.reading():
            return set(self.storage.ids_by_key(list(keys)))

    def lookup(self, keys: Iterable[str]) -> list[int]:
        """The ids of these keys, in order; an unknown key raises :class:`NotFound`."""
        keys = list(keys)
        with self.storage.reading():
            found = self.storage.ids_by_key(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            raise _not_found("key", missing)
        return [found[key] for key in keys]

    def _records(self, ids: list[int]) -> list[GalleryRecord]:
        """Caller holds ``reading()``."""
        rows = self.storage.rows(ids)
        missing = [i for i in ids if i not in rows]
        if missing:
            raise _not_found("id", missing)
        vectors = self.storage.vectors(ids)
        return [GalleryRecord(id=i, vector=v, **rows[i]) for i, v in zip(ids, vectors, strict=True)]

    def get(self, ids: Iterable[int], *, actor: Actor | None = None) -> list[GalleryRecord]:
        """The stored items, in the order asked; an unknown id raises :class:`NotFound`. Logged as a
        ``read`` when searches are (``StoreOptions.audit_searches``)."""
        wanted = [int(i) for i in ids]
        with self.storage.reading():
            records = self._records(wanted)
        if self.options.audit_searches:
            self._record("read", actor, sync=False, ids=wanted)
        return records

    def search(
        self,
        vectors: np.ndarray,
        k: int = 10,
        filters: Filters | Sequence[Filters] | None = None,
        *,
        fingerprint: str | None = None,
        rerank: RerankConfig | None = None,
        params: SearchParams | None = None,
        group_by: GroupBy | None = None,
        min_score: float | None = None,
        actor: Actor | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits per query row of ``vectors`` (Q, dim), best first (scores within
        :data:`~reid.gallery.ranking.SCORE_TIE_TOLERANCE` tie: lower id first).

        ``filters`` is one :class:`Filters` for the whole batch or one per query. ``rerank`` re-orders
        each query's top ``rerank.top_n`` candidates by k-reciprocal distance, each query on its own (its
        hits never depend on the other queries of the batch); ``Hit.score`` is then ``1 -`` that
        distance. ``params`` are the backend's own knobs (e.g. ``FaissSearchParams(nprobe=32)``).

        ``group_by`` (``"track_id"`` or ``"person_id"``) collapses the hits so the ``k`` results are ``k``
        different tracks or people, each represented by its best-scoring crop (items without the field
        stand alone). Filters apply first, then re-ranking, then grouping. ``min_score`` drops hits (and
        groups) scoring below it. With ``audit_searches`` each call is one audit line.
        """
        check_fingerprint(self.fingerprint, fingerprint)
        k = check_k(k)
        self._check_params(params)
        if group_by is not None and group_by not in GROUP_FIELDS:
            raise ConfigError(f"group_by must be one of {list(GROUP_FIELDS)}, got {group_by!r}")
        if min_score is not None and not np.isfinite(min_score):
            raise ConfigError(f"min_score must be a finite number, got {min_score!r}")
        fetch = max(k, rerank.top_n) if rerank is not None else k
        limit = self.storage.max_k
        if limit is not None and fetch > limit:
            raise ConfigError(f"{self.backend} returns at most {limit} hits per query; asked for {fetch}")
        queries = as_unit_matrix(vectors, self.dim, what="query vectors")
        ranked: list[list[tuple[int, float]]] = [[] for _ in queries]
        rows: dict[int, ItemValues] = {}
        with self.storage.reading():
            # A grouped search fetches in rounds up to what the gallery holds (or the backend's cap).
            available = 0
            if group_by is not None:
                held = self.storage.count()
                available = held if limit is None else min(held, limit)
            for group_filters, group in group_queries(filters, len(queries)).items():
                plan = _Plan(fetch, k, group_filters, rerank, params)
                if group_by is None:
                    scores, ids = self._candidates(queries[group], plan, rows)
                    for row, q in enumerate(group):
                        ranked[q] = _top(scores[row], ids[row], k)
                else:
                    for q in group:
                        ranked[q] = self._grouped(queries[q], plan, group_by, available, rows)
            if min_score is not None:
                ranked = [[(i, score) for i, score in top if score >= min_score] for top in ranked]
            rows.update(self.storage.rows({i for top in ranked for i, _ in top} - rows.keys()))
        if self.options.audit_searches:
            self._record_search(filters, actor, queries=len(queries), k=k, group_by=group_by, ranked=ranked)
        return [_hits(top, rows) for top in ranked]

    def _record_search(
        self,
        filters: Filters | Sequence[Filters] | None,
        actor: Actor | None,
        *,
        ranked: list[list[tuple[int, float]]],
        **details: Any,
    ) -> None:
        if isinstance(filters, Filters):
            described: Any = filters.as_dict()
        else:
            described = None if filters is None else [f.as_dict() for f in filters]
        hits = sum(map(len, ranked))
        self._record("search", actor, sync=False, filter=described, hits=hits, **details)

    def _candidates(
        self, queries: np.ndarray, plan: _Plan, rows: dict[int, ItemValues]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each query's ``plan.fetch`` nearest candidates, re-ranked when asked: ``(scores, ids)``."""
        scores, ids, found = self.storage.nearest(queries, plan.fetch, plan.filters, plan.params)
        rows.update(found)
        if plan.rerank is not None:
            for q in range(len(queries)):
                one = slice(q, q + 1)
                scores[q] = rerank_candidates(queries[one], ids[one], self.storage.vectors, plan.rerank)[0]
        return scores, ids

    def _grouped(
        self, query: np.ndarray, plan: _Plan, group_by: GroupBy, limit: int, rows: dict[int, ItemValues]
    ) -> list[tuple[int, float]]:
        """The best crop of each of the ``plan.k`` best groups: candidates are fetched in growing rounds
        (``GROUP_FETCH`` × k first) until ``k`` groups are found or ``limit`` candidates (the gallery, or
        the backend's cap) were fetched."""
        fetch = min(max(plan.fetch, GROUP_FETCH * plan.k), limit)
        while fetch > 0:
            scores, ids = self._candidates(query[None], dataclasses.replace(plan, fetch=fetch), rows)
            candidates = _top(scores[0], ids[0], fetch)
            rows.update(self.storage.rows({i for i, _ in candidates} - rows.keys()))
            best: dict[Any, tuple[int, float]] = {}
            for item_id, score in candidates:  # best first: a group's first crop is its best
                value = rows[item_id][group_by]
                best.setdefault(("item", item_id) if value is None else value, (item_id, score))
                if len(best) == plan.k:
                    return list(best.values())
            if fetch >= limit:
                return list(best.values())
            fetch = min(fetch * 4, limit)
        return []

    def _check_params(self, params: SearchParams | None) -> None:
        accepted = self.storage.search_params
        if params is not None and (accepted is None or not isinstance(params, accepted)):
            raise ConfigError(f"the {self.backend} backend does not take {type(params).__name__}")

    def stats(self) -> GalleryStats:
        policies = [policy.as_dict() for policy in self.retention_policies()]
        with self.storage.reading():
            return GalleryStats(
                backend=self.backend,
                count=self.storage.count(),
                dim=self.dim,
                fingerprint=self.fingerprint,
                index=self.index_kind,
                details=self.storage.details(),
                retention=policies,
            )

    def export(self, out_dir: str | Path, *, actor: Actor | None = None) -> Path:
        """Write ``vectors.npy`` (float32, one row per item in id order), ``items.jsonl`` (the same order,
        with ``row`` = the vectors row) and ``gallery.json`` under ``out_dir``; returns ``out_dir``.
        Existing export files are not overwritten (``GalleryError``)."""
        out = export_dir(out_dir)
        with self.storage.reading():
            ids = self.storage.all_ids().tolist()
            vectors = np.lib.format.open_memmap(
                out / "vectors.npy", mode="w+", dtype=np.float32, shape=(len(ids), self.dim)
            )
            with (out / "items.jsonl").open("w", encoding="utf-8") as f:
                for start in range(0, len(ids), EXPORT_CHUNK):
                    chunk = ids[start : start + EXPORT_CHUNK]
                    for row_number, record in enumerate(self._records(chunk), start=start):
                        vectors[row_number] = record.vector
                        line = {"row": row_number, "id": record.id, **record.field_values()}
                        f.write(json.dumps(line, sort_keys=True) + "\n")
            vectors.flush()
            del vectors
            summary = {"dim": self.dim, "fingerprint": self.fingerprint, "index": self.index_kind}
            (out / "gallery.json").write_text(json.dumps({**summary, "count": len(ids)}, indent=2) + "\n")
        self._record("export", actor, count=len(ids), out=str(out.resolve()))
        return out

    # --- persistence ----------------------------------------------------------------------------------

    def save(self) -> None:
        """Make reopening fast (writes are already durable without it)."""
        self.storage.save()

    def close(self) -> None:
        """Release the gallery; later calls raise ``GalleryError``."""
        self.storage.close()
        if self._audit is not None:
            self._audit.close()

    def __enter__(self) -> GalleryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GalleryStore({self.storage.where}, index={self.index_kind!r}, dim={self.dim})"
