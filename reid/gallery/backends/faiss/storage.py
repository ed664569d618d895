"""The embedded gallery: SQLite (source of truth) plus a FAISS index (a snapshot, replayed on open).

A gallery is a directory::

    gallery.sqlite   items, their float32 vectors, the gallery's identity (WAL mode, synchronous=FULL)
    index.snapshot   the FAISS index as of ``seq`` (written atomically; may lag behind the database)
    gallery.lock     flock: one writer process, or any number of read-only ones
    audit.jsonl      the audit log (:mod:`reid.gallery.audit`)

Every write commits to SQLite first (durable when the call returns) and then updates the in-memory
index. On open, an index snapshot taken at the database's current ``last_seq`` is used as is; otherwise
it is reconciled by id sets (ids are never reused): ids the snapshot has and the database lacks are
removed, ids the database has and the snapshot lacks are re-added from the stored vectors. A missing or
unreadable snapshot rebuilds the index from the database (retraining on the first ``train_size``
vectors). So a crash at any point loses nothing that was acknowledged, and the index always ends up
with exactly the database's items.

Snapshots are taken on :meth:`FaissStorage.save`, on close, and automatically once the writes since
the last one reach ``max(10 000, 25 % of the gallery)``: snapshot I/O stays proportional to the writes
and a reopen never replays more than about a quarter of the gallery.

:meth:`FaissStorage.scrub` (after an erasure) leaves no deleted vector readable in these files: the
database's deleted cells are zeroed (``secure_delete``) and checkpointed, an index kind that cannot remove
vectors (HNSW) is rebuilt without them, and the snapshot is rewritten.

Concurrency: searches run in parallel under a readers-writer lock (:meth:`FaissStorage.reading`),
writes one at a time (:meth:`FaissStorage.writing`). An upsert gives replaced items a new id (ids are
never reused, which keeps replay exact and works for index kinds that cannot remove vectors in place).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from reid.errors import ConfigError, GalleryError
from reid.gallery.backends.faiss.columns import FilterColumns
from reid.gallery.backends.faiss.index import VectorIndex, build_index
from reid.gallery.backends.faiss.metadata import FilterColumnsData, GalleryMeta, MetadataDB
from reid.gallery.backends.faiss.params import FaissSearchParams
from reid.gallery.backends.faiss.rwlock import ReadWriteLock
from reid.gallery.backends.faiss.snapshot import read_snapshot, write_snapshot
from reid.gallery.filters import Filters
from reid.gallery.items import INSERTED_FIELD, ItemValues
from reid.gallery.retention import RetentionPolicy
from reid.gallery.storage import Identity, OpenRequest, SearchParams
from reid.gallery.vectors import as_unit_matrix

logger = logging.getLogger(__name__)

DB_FILE = "gallery.sqlite"
SNAPSHOT_FILE = "index.snapshot"
LOCK_FILE = "gallery.lock"
AUDIT_FILE = "audit.jsonl"
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


def _columns_of(ids: Sequence[int], rows: Sequence[ItemValues]) -> FilterColumnsData:
    def column(name: str) -> np.ndarray:
        return np.array([np.nan if row[name] is None else row[name] for row in rows], dtype=np.float64)

    return FilterColumnsData(
        ids=np.asarray(ids, dtype=np.int64),
        person_ids=column("person_id"),
        camera_ids=column("camera_id"),
        timestamps=column("timestamp"),
        inserted=column(INSERTED_FIELD),
    )


class FaissStorage:
    """FAISS + SQLite :class:`~reid.gallery.storage.Storage`; open it through ``open_gallery``."""

    backend: ClassVar[str] = "faiss"
    options: ClassVar[frozenset[str]] = frozenset(
        {"train_size", "nprobe", "ef_search", "use_gpu", "read_only", "autosave"}
    )
    search_params: ClassVar[type[SearchParams] | None] = FaissSearchParams
    text_limits: ClassVar[Mapping[str, int]] = {}
    max_k: ClassVar[int | None] = None

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
        defaults: FaissSearchParams,
        use_gpu: bool | None,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self._db = db
        self._index = index
        self._columns = columns
        self._lock_fd: int | None = lock_fd
        self._autosave = autosave
        self._snapshot_seq = snapshot_seq
        self._defaults = defaults
        self._use_gpu = use_gpu
        self._unsaved = unsaved  # writes (items added or removed) the snapshot lacks
        self._lock = ReadWriteLock()
        self._save_lock = threading.Lock()

    # --- opening --------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        request: OpenRequest,
        *,
        train_size: int | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        use_gpu: bool | None = None,
        read_only: bool = False,
        autosave: bool = True,
    ) -> FaissStorage:
        """Open the gallery directory ``request.location``, creating it when missing.

        Creating needs ``request.dim``; ``request.index`` is a FAISS factory string (default ``"Flat"``:
        exact) and ``train_size`` how many vectors trainable kinds wait for (default: 40 per IVF list or PQ
        centroid). Both are fixed at creation: on an existing gallery they must match or be left out.
        ``nprobe``/``ef_search`` set the default query-time effort of IVF/HNSW indexes; ``use_gpu``
        ``None`` uses a GPU when FAISS sees one. ``read_only`` opens may run beside each other but not
        beside a writer.
        """
        path, dim, index = Path(request.location), request.dim, request.index
        db_path = path / DB_FILE
        defaults = FaissSearchParams(nprobe=nprobe, ef_search=ef_search)
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
            create = (
                GalleryMeta(dim, request.fingerprint, index or DEFAULT_INDEX, train_size) if dim else None
            )
            db = MetadataDB(db_path, create=create, read_only=read_only)
            _check_configuration(db, index=index, train_size=train_size)
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
            defaults=defaults,
            use_gpu=use_gpu,
        )

    # --- identity -------------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"gallery {self.path}"

    @property
    def identity(self) -> Identity:
        """The index is a FAISS factory string (``Flat``, ``IVF4096,Flat``, ...)."""
        meta = self._db.meta
        return Identity(meta.dim, meta.fingerprint, meta.index)

    @property
    def writable(self) -> bool:
        return not self.read_only

    @property
    def audit_path(self) -> Path:
        return self.path / AUDIT_FILE

    def record_fingerprint(self, fingerprint: str) -> None:
        self._db.record_fingerprint(fingerprint)

    @property
    def retention(self) -> RetentionPolicy | None:
        stored = self._db.setting("retention")
        return None if stored is None else RetentionPolicy.from_json(stored)

    def record_retention(self, policy: RetentionPolicy | None) -> None:
        self._db.record_setting("retention", None if policy is None else policy.to_json())

    # --- locking --------------------------------------------------------------------------------------

    def _check_open(self, *, write: bool = False) -> None:
        if self._lock_fd is None:
            raise GalleryError(f"gallery {self.path} is closed")
        if write and self.read_only:
            raise GalleryError(f"gallery {self.path} is open read-only")

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self._lock.read():
            self._check_open()
            yield

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """The write lock; on a clean exit, a snapshot once enough writes have piled up (autosave)."""
        self._check_open(write=True)
        with self._lock.write():
            self._check_open(write=True)
            yield
        self._maybe_autosave()

    # --- writes (under writing()) ---------------------------------------------------------------------

    def write(self, rows: Sequence[ItemValues], vectors: np.ndarray, replaced: Sequence[int]) -> list[int]:
        ids = self._db.insert(rows, vectors, replaced)
        if replaced:
            self._index.remove(np.asarray(replaced))
            self._columns.remove(np.asarray(replaced))
        self._index.add(vectors, np.asarray(ids))
        self._columns.put(_columns_of(ids, rows))
        self._unsaved += len(ids) + len(replaced)
        return ids

    def delete(self, ids: Sequence[int]) -> None:
        self._db.delete(ids)
        self._index.remove(np.asarray(ids))
        self._columns.remove(np.asarray(ids))
        self._unsaved += len(ids)

    def scrub(self) -> None:
        """Make the deleted items unreadable in the gallery's files now (see the module docstring)."""
        if self._index.ntotal != self._columns.live_count:  # a kind that kept deleted vectors
            meta = self._db.meta
            index = VectorIndex(meta.index, meta.dim, train_size=meta.train_size)
            _replay(index, self._db, None, self.path)
            index.use_gpu(self._use_gpu)
            self._index = index
        self._db.checkpoint()
        # Under the write lock no one else can hold the read lock a snapshot needs: no _save_lock here.
        self._write_snapshot()

    def train(self, sample: np.ndarray) -> None:
        """Train a trainable index on ``sample`` (unit vectors) now instead of on the first
        ``train_size`` added vectors. A rebuild from the database (lost snapshot) trains on those."""
        vectors = as_unit_matrix(sample, self._db.meta.dim, what="training vectors")
        with self.writing():
            self._index.train(vectors)
            self._unsaved += 1

    # --- reads (under reading()) ----------------------------------------------------------------------

    def count(self) -> int:
        return self._columns.live_count

    def ids_by_key(self, keys: Sequence[str]) -> dict[str, int]:
        return self._db.ids_by_key(keys)

    def rows(self, ids: Iterable[int]) -> dict[int, ItemValues]:
        return self._db.rows(ids)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        return self._db.vectors(ids)

    def all_ids(self) -> np.ndarray:
        return self._db.all_ids()

    def _allowed(self, filters: Filters | None, *, live_only: bool) -> np.ndarray | None:
        """The filter as a boolean mask over ids (``None``: everything allowed)."""
        allowed = self._columns.mask(filters, live_only=live_only)
        if filters is not None and (filters.key_prefix is not None or filters.metadata is not None):
            assert allowed is not None  # the filter is not empty
            passing = np.zeros_like(allowed)
            passing[self._db.ids_matching_text(filters)] = True
            allowed &= passing
        return allowed

    def matching(self, filters: Filters) -> np.ndarray:
        allowed = self._allowed(filters, live_only=True)
        assert allowed is not None
        return np.flatnonzero(allowed).astype(np.int64)

    def nearest(
        self, queries: np.ndarray, k: int, filters: Filters | None, params: SearchParams | None
    ) -> tuple[np.ndarray, np.ndarray, dict[int, ItemValues]]:
        knobs = params if isinstance(params, FaissSearchParams) else FaissSearchParams()
        keeps_deleted = self._index.ntotal != self._columns.live_count
        allowed = self._allowed(filters, live_only=keeps_deleted)
        scores, ids = self._index.search(queries, k, allowed=allowed, knobs=knobs.over(self._defaults))
        return scores, ids, {}

    def details(self) -> dict[str, Any]:
        return {
            "trained": self._index.is_trained,
            "index_vectors": self._index.ntotal,
            "device": self._index.device,
            "disk_bytes": sum(f.stat().st_size for f in self.path.iterdir() if f.is_file()),
            "last_seq": self._db.last_seq,
            "snapshot_seq": self._snapshot_seq,
        }

    # --- persistence ----------------------------------------------------------------------------------

    def _write_snapshot(self) -> None:
        """Caller holds the write lock, or the read lock (no write in flight) and ``_save_lock``."""
        seq, meta = self._db.last_seq, self._db.meta
        header = {
            "format": SNAPSHOT_FORMAT,
            "seq": seq,
            "dim": meta.dim,
            "factory": meta.index,
            "fingerprint": meta.fingerprint,
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
        with self._save_lock, self.reading():
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

    def __repr__(self) -> str:
        return f"FaissStorage({str(self.path)!r}, {self.identity})"


def _check_configuration(db: MetadataDB, *, index: str | None, train_size: int | None) -> None:
    meta = db.meta
    if index is not None and index != meta.index:
        raise GalleryError(f"gallery {db.path.parent} uses index {meta.index!r}, not {index!r}")
    if train_size is not None and train_size != meta.train_size:
        raise GalleryError(f"gallery {db.path.parent} uses train_size {meta.train_size}, not {train_size}")


def _replay(index: VectorIndex, db: MetadataDB, ids: np.ndarray | None, path: Path) -> None:
    """Add the stored vectors of ``ids`` (``None``: every item) to ``index``."""
    total = len(ids) if ids is not None else db.count()
    logger.info("gallery %s: adding %d stored vectors to the index", path, total)
    with tqdm(total=total, desc="replay", unit="vec", disable=None) as bar:
        for batch_ids, vectors in db.iter_vectors(ids=ids):
            index.add(vectors, batch_ids)
            bar.update(len(batch_ids))


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
        _replay(index, db, None if not len(stored) else missing, path)
    stale = header is not None or len(columns.ids) > 0
    return index, None, columns, max(len(dead) + len(missing), int(stale))
