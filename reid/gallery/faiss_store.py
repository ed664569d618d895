"""The embedded gallery: SQLite (source of truth) plus a FAISS index (a snapshot, replayed on open).

A gallery is a directory::

    gallery.sqlite   items, their float32 vectors, the gallery's identity (WAL mode, synchronous=FULL)
    index.snapshot   the FAISS index as of ``seq`` (written atomically; may lag behind the database)
    gallery.lock     flock: one writer process, or any number of read-only ones

Every write commits to SQLite first (durable when the call returns) and then updates the in-memory
index. On open, an index snapshot taken at the database's current ``last_seq`` is used as is; otherwise
it is reconciled by id sets (ids are never reused): ids the snapshot has and the database lacks are
removed, ids the database has and the snapshot lacks are re-added from the stored vectors. A missing or
unreadable snapshot rebuilds the index from the database (retraining on the first ``train_size``
vectors). So a crash at any point loses nothing that was acknowledged, and the index always ends up
with exactly the database's items.

Snapshots are taken on :meth:`FaissGallery.save`, on close, and automatically once the writes since
the last one reach ``max(10 000, 25 % of the gallery)``: snapshot I/O stays proportional to the writes
and a reopen never replays more than about a quarter of the gallery.

Concurrency: searches run in parallel under a readers-writer lock, writes one at a time.
``upsert`` gives replaced items a new id (ids are never reused, which keeps replay exact and works for
index kinds that cannot remove vectors in place).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from reid.errors import ConfigError, GalleryError, ModelMismatch
from reid.gallery.filtering import FilterColumns
from reid.gallery.index import SearchTuning, VectorIndex, build_index
from reid.gallery.metadata import FilterColumnsData, GalleryMeta, ItemRow, MetadataDB
from reid.gallery.ranking import best_first
from reid.gallery.rerank import RerankConfig, rerank_candidates
from reid.gallery.rwlock import ReadWriteLock
from reid.gallery.snapshot import read_snapshot, write_snapshot
from reid.gallery.store import Filters, GalleryItem, GalleryRecord, GalleryStats, Hit, group_queries
from reid.gallery.vectors import (
    as_unit_matrix,
    check_fingerprint,
    check_k,
    export_dir,
    item_matrix,
    require_keys,
)

logger = logging.getLogger(__name__)

DB_FILE = "gallery.sqlite"
SNAPSHOT_FILE = "index.snapshot"
LOCK_FILE = "gallery.lock"
DEFAULT_INDEX = "Flat"
AUTOSAVE_MIN = 10_000
AUTOSAVE_FRACTION = 0.25
SNAPSHOT_FORMAT = 1


def _lock_directory(path: Path, *, shared: bool) -> int:
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = "open for writing by another process" if shared else "open in another process"
        raise GalleryError(f"gallery {path} is {holder}") from None
    return fd


def _columns_of(ids: Sequence[int], items: Sequence[GalleryItem]) -> FilterColumnsData:
    def column(values: Iterable[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    return FilterColumnsData(
        ids=np.asarray(ids, dtype=np.int64),
        person_ids=column(item.person_id for item in items),
        camera_ids=column(item.camera_id for item in items),
        timestamps=column(item.timestamp for item in items),
    )


def _hit(row: ItemRow, score: float) -> Hit:
    return Hit(
        id=row.id,
        score=score,
        key=row.key,
        person_id=row.person_id,
        camera_id=row.camera_id,
        source=row.source,
        timestamp=row.timestamp,
        metadata=row.metadata,
    )


class FaissGallery:
    """The FAISS + SQLite :class:`reid.gallery.GalleryStore`. Use :meth:`open` (or ``open_gallery``)."""

    def __init__(
        self,
        path: Path,
        db: MetadataDB,
        index: VectorIndex,
        columns: FilterColumns,
        lock_fd: int,
        *,
        read_only: bool,
        autosave: bool,
        snapshot_seq: int | None,
        unsaved: int,
        tuning: SearchTuning,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self._db = db
        self._index = index
        self._columns = columns
        self._lock_fd: int | None = lock_fd
        self._autosave = autosave
        self._snapshot_seq = snapshot_seq
        self._tuning = tuning
        self._unsaved = unsaved  # writes (items added or removed) the snapshot lacks
        self._lock = ReadWriteLock()
        self._save_lock = threading.Lock()

    # --- opening --------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        location: str | Path,
        *,
        dim: int | None = None,
        fingerprint: str | None = None,
        index: str | None = None,
        train_size: int | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        use_gpu: bool | None = None,
        read_only: bool = False,
        autosave: bool = True,
    ) -> FaissGallery:
        """Open the gallery directory ``location``, creating it when missing.

        Creating needs ``dim``; ``index`` is a FAISS factory string (default ``"Flat"``: exact) and
        ``train_size`` how many vectors trainable kinds wait for (default: 40 per IVF list or PQ
        centroid). Both are fixed at creation: on an existing gallery they must match or be left out.
        ``dim`` and ``fingerprint`` given for an existing gallery must match it (:class:`ModelMismatch`
        otherwise); a gallery created without a fingerprint records the first one given while empty.
        ``nprobe``/``ef_search`` set the default query-time effort of IVF/HNSW indexes; ``use_gpu``
        ``None`` uses a GPU when FAISS sees one. ``read_only`` opens may run beside each other but not
        beside a writer.
        """
        path = Path(location)
        db_path = path / DB_FILE
        tuning = SearchTuning(nprobe=nprobe, ef_search=ef_search)
        _check_tuning(tuning)
        creating = not db_path.exists()
        if creating:
            if read_only or dim is None:
                hint = "" if read_only else "; pass dim= to create one"
                raise GalleryError(f"no gallery at {path}{hint}")
            if dim < 1:
                raise ConfigError(f"gallery dim must be positive, got {dim}")
            if train_size is not None and train_size < 1:
                raise ConfigError(f"train_size must be positive, got {train_size}")
            build_index(index or DEFAULT_INDEX, dim)  # refuse a bad factory before creating anything
            path.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock_directory(path, shared=read_only)
        db: MetadataDB | None = None
        try:
            create = GalleryMeta(dim, fingerprint, index or DEFAULT_INDEX, train_size) if dim else None
            db = MetadataDB(db_path, create=create, read_only=read_only)
            _check_identity(db, dim=dim, fingerprint=fingerprint, index=index, train_size=train_size)
            vindex, snapshot_seq, columns, unsaved = _load_index(path, db)
            vindex.use_gpu(use_gpu)
        except BaseException:
            if db is not None:
                db.close()
            os.close(lock_fd)
            raise
        return cls(
            path,
            db,
            vindex,
            FilterColumns(columns),
            lock_fd,
            read_only=read_only,
            autosave=autosave,
            snapshot_seq=snapshot_seq,
            unsaved=unsaved,
            tuning=tuning,
        )

    # --- identity -------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._db.meta.dim

    @property
    def fingerprint(self) -> str | None:
        return self._db.meta.fingerprint

    @property
    def index_kind(self) -> str:
        """The FAISS factory string (``Flat``, ``IVF4096,Flat``, ...)."""
        return self._db.meta.index

    # --- writes ---------------------------------------------------------------------------------------

    def _check_open(self, *, write: bool = False) -> None:
        if self._lock_fd is None:
            raise GalleryError(f"gallery {self.path} is closed")
        if write and self.read_only:
            raise GalleryError(f"gallery {self.path} is open read-only")

    def _write(self, items: Sequence[GalleryItem], fingerprint: str | None, *, replace: bool) -> list[int]:
        check_fingerprint(self.fingerprint, fingerprint)
        items = list(items)
        if not items:
            return []
        vectors = item_matrix(items, self.dim)
        with self._lock.write():
            self._check_open(write=True)
            ids, removed = self._db.insert(items, vectors, replace_keys=replace)
            if removed:
                self._index.remove(np.asarray(removed))
                self._columns.remove(np.asarray(removed))
            self._index.add(vectors, np.asarray(ids))
            self._columns.put(_columns_of(ids, items))
            self._unsaved += len(ids) + len(removed)
        self._maybe_autosave()
        return ids

    def add(self, items: Sequence[GalleryItem], *, fingerprint: str | None = None) -> list[int]:
        """Store new items; returns their ids (durable on return). Existing keys raise ``GalleryError``."""
        return self._write(items, fingerprint, replace=False)

    def upsert(self, items: Sequence[GalleryItem], *, fingerprint: str | None = None) -> list[int]:
        """Insert or replace by key (every item needs one). A replaced item gets a new id."""
        require_keys(items)
        return self._write(items, fingerprint, replace=True)

    def delete(self, ids: Iterable[int]) -> None:
        """Remove items by id; any unknown id raises ``NotFound`` and nothing is removed."""
        unique = sorted({int(i) for i in ids})
        if not unique:
            return
        with self._lock.write():
            self._check_open(write=True)
            self._db.delete(unique)
            self._index.remove(np.asarray(unique))
            self._columns.remove(np.asarray(unique))
            self._unsaved += len(unique)
        self._maybe_autosave()

    def train(self, sample: np.ndarray) -> None:
        """Train a trainable index on ``sample`` (unit vectors) now instead of on the first
        ``train_size`` added vectors. A rebuild from the database (lost snapshot) trains on those."""
        vectors = as_unit_matrix(sample, self.dim, what="training vectors")
        with self._lock.write():
            self._check_open(write=True)
            self._index.train(vectors)
            self._unsaved += 1

    # --- reads ----------------------------------------------------------------------------------------

    def count(self) -> int:
        with self._lock.read():
            self._check_open()
            return self._columns.live_count

    def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` the gallery holds (one query per chunk of keys; resumable jobs)."""
        with self._lock.read():
            self._check_open()
            return self._db.existing_keys(list(keys))

    def lookup(self, keys: Iterable[str]) -> list[int]:
        """Ids of ``keys``, in order; an unknown key raises ``NotFound``."""
        with self._lock.read():
            self._check_open()
            return self._db.lookup(list(keys))

    def get(self, ids: Iterable[int]) -> list[GalleryRecord]:
        """Stored items in the order asked; an unknown id raises ``NotFound``."""
        with self._lock.read():
            self._check_open()
            return self._db.records([int(i) for i in ids])

    def search(
        self,
        vectors: np.ndarray,
        k: int = 10,
        filters: Filters | Sequence[Filters] | None = None,
        *,
        fingerprint: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        rerank: RerankConfig | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits per query row, best first (scores within
        :data:`~reid.gallery.ranking.SCORE_TIE_TOLERANCE` tie: lower id first).

        ``filters``: one :class:`Filters` for all queries or one per query. ``nprobe``/``ef_search``
        override the gallery's query effort for this call. ``rerank`` re-orders each query's top
        ``rerank.top_n`` candidates by k-reciprocal distance (``Hit.score`` is then 1 - that distance).
        """
        check_fingerprint(self.fingerprint, fingerprint)
        k = check_k(k)
        tuning = SearchTuning(
            nprobe=nprobe or self._tuning.nprobe, ef_search=ef_search or self._tuning.ef_search
        )
        _check_tuning(tuning)
        queries = as_unit_matrix(vectors, self.dim, what="query vectors")
        groups = group_queries(filters, len(queries))
        fetch = max(k, rerank.top_n) if rerank is not None else k
        scores = np.full((len(queries), fetch), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), fetch), -1, dtype=np.int64)
        with self._lock.read():
            self._check_open()
            keeps_deleted = self._index.ntotal != self._columns.live_count
            for group_filters, rows in groups.items():
                allowed = self._columns.mask(group_filters, live_only=keeps_deleted)
                scores[rows], ids[rows] = self._index.search(
                    queries[rows], fetch, allowed=allowed, tuning=tuning
                )
            if rerank is not None:
                scores = rerank_candidates(queries, ids, self._db.vectors, rerank)
            rows_by_id = self._db.rows(ids[ids >= 0].tolist())
        return [self._hits(scores[q], ids[q], rows_by_id, k) for q in range(len(queries))]

    def _hits(self, scores: np.ndarray, ids: np.ndarray, rows: dict[int, ItemRow], k: int) -> list[Hit]:
        found = ids >= 0
        scores, ids = scores[found], ids[found]
        order = best_first(scores, ids)[:k]
        missing = [int(i) for i in ids[order] if int(i) not in rows]
        if missing:
            raise GalleryError(f"index and metadata disagree: ids {missing[:10]} have no metadata row")
        return [_hit(rows[int(ids[i])], float(scores[i])) for i in order]

    def stats(self) -> GalleryStats:
        with self._lock.read():
            self._check_open()
            disk = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
            return GalleryStats(
                count=self._columns.live_count,
                dim=self.dim,
                fingerprint=self.fingerprint,
                index=self.index_kind,
                trained=self._index.is_trained,
                index_vectors=self._index.ntotal,
                device=self._index.device,
                disk_bytes=disk,
                last_seq=self._db.last_seq,
                snapshot_seq=self._snapshot_seq,
            )

    def export(self, out_dir: str | Path) -> Path:
        """Write ``vectors.npy`` (float32, one row per item in id order), ``items.jsonl`` (the same order,
        with ``row`` = the vectors row) and ``gallery.json`` under ``out_dir``; returns ``out_dir``.
        Existing export files are not overwritten (``GalleryError``)."""
        out = export_dir(out_dir)
        with self._lock.read():
            self._check_open()
            count = self._columns.live_count
            vectors = np.lib.format.open_memmap(
                out / "vectors.npy", mode="w+", dtype=np.float32, shape=(count, self.dim)
            )
            with (out / "items.jsonl").open("w", encoding="utf-8") as f:
                for row_number, (row, vector) in enumerate(self._db.iter_rows()):
                    vectors[row_number] = vector
                    record: dict[str, Any] = {"row": row_number, **vars(row)}
                    f.write(json.dumps(record, sort_keys=True) + "\n")
            vectors.flush()
            del vectors
            summary = {"dim": self.dim, "fingerprint": self.fingerprint, "index": self.index_kind}
            (out / "gallery.json").write_text(json.dumps({**summary, "count": count}, indent=2) + "\n")
        return out

    # --- persistence ----------------------------------------------------------------------------------

    def _write_snapshot(self) -> None:
        """Caller holds the read or write lock (no write in flight) and ``_save_lock``."""
        seq = self._db.last_seq
        header = {
            "format": SNAPSHOT_FORMAT,
            "seq": seq,
            "dim": self.dim,
            "factory": self.index_kind,
            "fingerprint": self.fingerprint,
            "trained": self._index.is_trained,
            "ntotal": self._index.ntotal,
        }
        size = write_snapshot(self.path / SNAPSHOT_FILE, self._index.cpu_index(), header)
        logger.debug("gallery %s: index snapshot at seq %d (%d bytes)", self.path, seq, size)
        self._snapshot_seq = seq
        self._unsaved = 0

    def save(self) -> None:
        """Snapshot the index now so the next open replays nothing (writes are durable without it)."""
        self._check_open(write=True)
        with self._save_lock, self._lock.read():
            self._check_open()
            self._write_snapshot()

    def _maybe_autosave(self) -> None:
        threshold = max(AUTOSAVE_MIN, AUTOSAVE_FRACTION * self._columns.live_count)
        if not self._autosave or self.read_only or self._unsaved < threshold:
            return
        if self._save_lock.acquire(blocking=False):  # a save already running covers this one
            try:
                with self._lock.read():
                    if self._lock_fd is not None:
                        self._write_snapshot()
            finally:
                self._save_lock.release()

    def close(self) -> None:
        """Snapshot unsaved changes and release the gallery; later calls raise ``GalleryError``."""
        with self._save_lock, self._lock.write():
            if self._lock_fd is None:
                return
            try:
                if not self.read_only and self._unsaved:
                    self._write_snapshot()
            finally:
                self._db.close()
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> FaissGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaissGallery({str(self.path)!r}, index={self.index_kind!r}, dim={self.dim})"


def _check_tuning(tuning: SearchTuning) -> None:
    for name in ("nprobe", "ef_search"):
        value = getattr(tuning, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be positive, got {value}")


def _check_identity(
    db: MetadataDB, *, dim: int | None, fingerprint: str | None, index: str | None, train_size: int | None
) -> None:
    meta = db.meta
    if dim is not None and dim != meta.dim:
        raise ModelMismatch(f"gallery {db.path.parent} holds {meta.dim}-d embeddings, not {dim}-d")
    if index is not None and index != meta.index:
        raise GalleryError(f"gallery {db.path.parent} uses index {meta.index!r}, not {index!r}")
    if train_size is not None and train_size != meta.train_size:
        raise GalleryError(f"gallery {db.path.parent} uses train_size {meta.train_size}, not {train_size}")
    if fingerprint is None or fingerprint == meta.fingerprint:
        return
    if meta.fingerprint is None and not db.read_only and db.count() == 0:
        db.record_fingerprint(fingerprint)
        return
    raise ModelMismatch(
        f"gallery {db.path.parent} was built with model {meta.fingerprint!r}, not {fingerprint!r}"
    )


def _load_index(path: Path, db: MetadataDB) -> tuple[VectorIndex, int | None, FilterColumnsData, int]:
    """The index for the database's current state: the snapshot, reconciled when it lags.

    Returns the index, the snapshot's ``seq`` when it was current, the filter columns and how many
    changes the snapshot lacks (at least 1 when it is stale, so that closing refreshes it).
    """
    meta = db.meta
    snapshot_path = path / SNAPSHOT_FILE
    header: dict[str, Any] | None = None
    restored = None
    if snapshot_path.exists():
        try:
            header, restored = read_snapshot(snapshot_path)
            if (header.get("dim"), header.get("factory")) != (meta.dim, meta.index):
                raise GalleryError(f"{snapshot_path} belongs to another index configuration")
        except GalleryError as exc:
            logger.warning("%s; rebuilding the index from the database", exc)
            header, restored = None, None
    index = VectorIndex(
        meta.index,
        meta.dim,
        restored=restored,
        restored_trained=bool(header and header.get("trained")),
        train_size=meta.train_size,
    )
    columns = db.filter_columns()
    if header is not None and header.get("seq") == db.last_seq and header.get("ntotal") == index.ntotal:
        return index, int(header["seq"]), columns, 0
    stored = index.ids()
    dead = np.setdiff1d(stored, columns.ids, assume_unique=True)
    if len(dead):
        index.remove(dead)
    missing = np.setdiff1d(columns.ids, stored, assume_unique=True)
    if len(missing):
        logger.info("gallery %s: adding %d vectors the index snapshot lacks", path, len(missing))
        batches = db.iter_vectors(ids=None if not len(stored) else missing)
        with tqdm(total=len(missing), desc="replay", unit="vec", disable=None) as bar:
            for ids, vectors in batches:
                index.add(vectors, ids)
                bar.update(len(ids))
    stale = header is not None or len(columns.ids) > 0
    return index, None, columns, max(len(dead) + len(missing), int(stale))
