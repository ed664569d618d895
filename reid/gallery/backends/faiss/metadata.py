"""SQLite part of the gallery: the source of truth for items, their vectors and the gallery's identity.

Durability: WAL journal with ``synchronous=FULL``, so a write transaction is on disk (WAL fsynced) when
``COMMIT`` returns; an acknowledged ``add`` survives ``kill -9`` and power loss. (``NORMAL`` would survive
``kill -9`` too, since only the process dies, but can lose the last commits on power loss.)

Ids come from ``AUTOINCREMENT`` and are never reused, so an id names one vector forever; this is what lets
the FAISS snapshot be reconciled by id sets alone. ``last_seq`` in the meta table counts write
transactions; a snapshot taken at the same ``last_seq`` needs no reconciliation.

The ``items`` table has a column per field of the item schema (:mod:`reid.gallery.items`). A gallery
written before a field was declared gains its column when it is next opened for writing (the
migration: ``ALTER TABLE ... ADD COLUMN``; old items read the field as ``None``, and a managed time
field as the time of the migration: a constant column default, so no row is rewritten).

Deleted items do not linger in the file: ``secure_delete`` overwrites their cells and freed pages with
zeros, and :meth:`MetadataDB.checkpoint` copies those pages over the database and empties the WAL.

Writes go through one connection guarded by the caller's write lock; reads use one connection per
thread (WAL readers never block each other or the writer).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reid.errors import GalleryError, NotFound
from reid.gallery.filters import Filters, prefix_range
from reid.gallery.items import FIELD_NAMES, INSERTED_FIELD, ITEM_FIELDS, KEY_FIELD, FieldSpec, ItemValues

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
VECTOR_DTYPE = np.dtype("<f4")
# Stay well below SQLite's bound-parameter limit (999 before 3.32).
_CHUNK = 900
_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "text": "TEXT", "json": "TEXT NOT NULL DEFAULT '{}'"}
_ROW_COLUMNS = ", ".join(("id", *FIELD_NAMES))
_JSON_FIELDS = frozenset(f.name for f in ITEM_FIELDS if f.kind == "json")


def _column(spec: FieldSpec, *, default: float | None = None) -> str:
    column = f"{spec.name} {_SQL_TYPES[spec.kind]}"
    return column if default is None else f"{column} DEFAULT {float(default)!r}"


def _unique_index(spec: FieldSpec) -> str:
    return f"CREATE UNIQUE INDEX IF NOT EXISTS items_{spec.name} ON items ({spec.name})"


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(_column(spec) for spec in ITEM_FIELDS)
    + ", vector BLOB NOT NULL)",
    *(_unique_index(spec) for spec in ITEM_FIELDS if spec.unique),
]


@dataclass(frozen=True)
class GalleryMeta:
    """The gallery's identity, fixed at creation (the fingerprint may be recorded later, once).

    ``train_size`` ``None`` means the index kind's default.
    """

    dim: int
    fingerprint: str | None
    index: str
    train_size: int | None = None


@dataclass(frozen=True)
class FilterColumnsData:
    """The columns search filters need, for every item, as arrays aligned on ``ids``."""

    ids: np.ndarray
    person_ids: np.ndarray  # float64 with NaN for "unknown" (ids beyond 2**53 are not expected)
    camera_ids: np.ndarray
    timestamps: np.ndarray
    inserted: np.ndarray


def _params(item_id: int, row: ItemValues, vector: np.ndarray) -> tuple[Any, ...]:
    values = (json.dumps(row[n], sort_keys=True) if n in _JSON_FIELDS else row[n] for n in FIELD_NAMES)
    return (item_id, *values, vector.astype(VECTOR_DTYPE, copy=False).tobytes())


def _row(values: Sequence[Any]) -> ItemValues:
    named = zip(FIELD_NAMES, values[1:], strict=True)
    return {name: json.loads(value) if name in _JSON_FIELDS else value for name, value in named}


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class MetadataDB:
    """The gallery's SQLite file. Not thread-safe for writes: the store serialises them."""

    def __init__(self, path: Path, *, create: GalleryMeta | None = None, read_only: bool = False) -> None:
        """Open ``path``; with ``create`` a file without a gallery schema (new, or left empty by a crash
        during creation) is initialised first."""
        self.path = path
        self.read_only = read_only
        self._readers: dict[int, sqlite3.Connection] = {}
        self._readers_lock = threading.Lock()
        self._conn = self._connect()
        if create is not None and not self._has_schema():
            self._initialise(create)
        self.meta = self._read_meta()
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise GalleryError(f"cannot open gallery database {self.path}: {exc}") from exc
        return conn

    def _has_schema(self) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        return self._conn.execute(sql).fetchone() is not None

    def _initialise(self, meta: GalleryMeta) -> None:
        with self._transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            values = {
                "format_version": str(FORMAT_VERSION),
                "dim": str(meta.dim),
                "fingerprint": json.dumps(meta.fingerprint),
                "index": meta.index,
                "train_size": json.dumps(meta.train_size),
                "metric": "inner_product",
                "last_seq": "0",
            }
            conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", values.items())

    def _read_meta(self) -> GalleryMeta:
        try:
            values = dict(self._conn.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path} is not a gallery database: {exc}") from exc
        version = int(values.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise GalleryError(
                f"{self.path}: unsupported gallery format {version} (expected {FORMAT_VERSION})"
            )
        return GalleryMeta(
            dim=int(values["dim"]),
            fingerprint=json.loads(values["fingerprint"]),
            index=values["index"],
            train_size=json.loads(values["train_size"]),
        )

    def _migrate(self) -> None:
        """Add the columns of fields declared after this gallery was written (see the module docstring)."""
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(items)")}
        missing = [spec for spec in ITEM_FIELDS if spec.name not in present]
        if not missing:
            return
        names = [spec.name for spec in missing]
        if self.read_only:
            raise GalleryError(
                f"gallery {self.path.parent} predates the item fields {names}; open it once for writing to "
                "migrate it"
            )
        now = time.time()
        with self._transaction() as conn:
            for spec in missing:
                default = now if spec.name == INSERTED_FIELD else None
                conn.execute(f"ALTER TABLE items ADD COLUMN {_column(spec, default=default)}")
                if spec.unique:
                    conn.execute(_unique_index(spec))
        logger.info("gallery %s: added item fields %s", self.path.parent, names)

    class _Transaction:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
            self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")

    def _transaction(self) -> MetadataDB._Transaction:
        if self.read_only:
            raise GalleryError(f"gallery {self.path.parent} is open read-only")
        return MetadataDB._Transaction(self._conn)

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (WAL lets readers run beside the writer)."""
        ident = threading.get_ident()
        conn = self._readers.get(ident)
        if conn is None:
            conn = self._connect()
            with self._readers_lock:
                self._readers[ident] = conn
        return conn

    # --- identity -------------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        row = self._reader().execute("SELECT value FROM meta WHERE name = 'last_seq'").fetchone()
        return int(row[0])

    def record_fingerprint(self, fingerprint: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE meta SET value = ? WHERE name = 'fingerprint'", (json.dumps(fingerprint),))
        self.meta = self._read_meta()

    def setting(self, name: str) -> str | None:
        """A gallery setting kept in the meta table (``retention``), ``None`` when unset."""
        row = self._reader().execute("SELECT value FROM meta WHERE name = ?", (f"setting.{name}",)).fetchone()
        return None if row is None else str(row[0])

    def record_setting(self, name: str, value: str | None) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM meta WHERE name = ?", (f"setting.{name}",))
            if value is not None:
                conn.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (f"setting.{name}", value))

    @staticmethod
    def _bump_seq(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'last_seq'")

    # --- writes ---------------------------------------------------------------------------------------

    def insert(self, rows: Sequence[ItemValues], vectors: np.ndarray, replaced: Sequence[int]) -> list[int]:
        """In one transaction: delete the ``replaced`` ids, insert ``rows`` with their (checked)
        ``vectors``; returns the new ids."""
        with self._transaction() as conn:
            for chunk in _chunks(replaced):
                conn.execute(f"DELETE FROM items WHERE id IN ({_placeholders(len(chunk))})", chunk)
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'items'").fetchone()
            first = (row[0] if row else 0) + 1
            ids = list(range(first, first + len(rows)))
            params = [_params(i, values, v) for i, values, v in zip(ids, rows, vectors, strict=True)]
            try:
                conn.executemany(
                    f"INSERT INTO items ({_ROW_COLUMNS}, vector) VALUES ({_placeholders(len(params[0]))})",
                    params,
                )
            except sqlite3.IntegrityError as exc:  # the core checks keys first; this is the last guard
                raise GalleryError(f"gallery {self.path.parent}: {exc}") from exc
            self._bump_seq(conn)
        return ids

    def delete(self, ids: Sequence[int]) -> None:
        """Delete ``ids`` atomically; any unknown id raises :class:`NotFound` and nothing is deleted."""
        with self._transaction() as conn:
            missing = sorted(set(ids) - set(self._existing(conn, ids)))
            if missing:
                raise NotFound(f"no gallery item with id {', '.join(map(str, missing[:10]))}")
            for chunk in _chunks(ids):
                conn.execute(f"DELETE FROM items WHERE id IN ({_placeholders(len(chunk))})", chunk)
            self._bump_seq(conn)

    def checkpoint(self) -> None:
        """Copy every committed page (deleted content zeroed) into the database file and empty the WAL,
        so no deleted item stays readable in either file. Caller holds the write lock: no read is in
        flight, and the idle read connections are closed so none can pin an old WAL frame."""
        with self._readers_lock:
            readers = list(self._readers.values())
            self._readers.clear()
        for conn in readers:
            conn.close()
        busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise GalleryError(f"gallery {self.path.parent}: a reader blocked the WAL checkpoint; retry")

    # --- reads ----------------------------------------------------------------------------------------

    def ids_by_key(self, keys: Sequence[str]) -> dict[str, int]:
        """The ids of the keys that exist."""
        found: dict[str, int] = {}
        conn = self._reader()
        for chunk in _chunks(keys):
            sql = f"SELECT {KEY_FIELD}, id FROM items WHERE {KEY_FIELD} IN ({_placeholders(len(chunk))})"
            found.update(conn.execute(sql, chunk).fetchall())
        return found

    @staticmethod
    def _existing(conn: sqlite3.Connection, ids: Sequence[int]) -> list[int]:
        found: list[int] = []
        for chunk in _chunks(ids):
            sql = f"SELECT id FROM items WHERE id IN ({_placeholders(len(chunk))})"
            found.extend(row[0] for row in conn.execute(sql, chunk))
        return found

    def count(self) -> int:
        return int(self._reader().execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def all_ids(self) -> np.ndarray:
        rows = self._reader().execute("SELECT id FROM items ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def rows(self, ids: Iterable[int]) -> dict[int, ItemValues]:
        """The fields of the ids that exist, by id."""
        unique = sorted(set(ids))
        found: dict[int, ItemValues] = {}
        conn = self._reader()
        for chunk in _chunks(unique):
            sql = f"SELECT {_ROW_COLUMNS} FROM items WHERE id IN ({_placeholders(len(chunk))})"
            found.update((values[0], _row(values)) for values in conn.execute(sql, chunk))
        return found

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids`` in that order; an unknown id raises :class:`NotFound`."""
        by_id: dict[int, bytes] = {}
        conn = self._reader()
        for chunk in _chunks(sorted(set(ids))):
            sql = f"SELECT id, vector FROM items WHERE id IN ({_placeholders(len(chunk))})"
            by_id.update(conn.execute(sql, chunk).fetchall())
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise NotFound(f"no gallery item with id {', '.join(map(str, missing[:10]))}")
        return self._decode([by_id[i] for i in ids])

    def _decode(self, blobs: Sequence[bytes]) -> np.ndarray:
        return np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), self.meta.dim)

    def iter_vectors(
        self, *, ids: np.ndarray | None = None, chunk: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` batches in id order: all items, or only ``ids`` (those that exist)."""
        conn = self._reader()
        if ids is None:
            cursor = conn.execute("SELECT id, vector FROM items ORDER BY id")
            while batch := cursor.fetchmany(chunk):
                yield np.array([r[0] for r in batch], dtype=np.int64), self._decode([r[1] for r in batch])
            return
        wanted = np.sort(np.asarray(ids, dtype=np.int64))
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start : start + _CHUNK].tolist()
            sql = f"SELECT id, vector FROM items WHERE id IN ({_placeholders(len(part))}) ORDER BY id"
            batch = conn.execute(sql, part).fetchall()
            if batch:
                yield np.array([r[0] for r in batch], dtype=np.int64), self._decode([r[1] for r in batch])

    def filter_columns(self) -> FilterColumnsData:
        sql = f"SELECT id, person_id, camera_id, timestamp, {INSERTED_FIELD} FROM items"
        rows = self._reader().execute(sql).fetchall()
        table = np.array(rows, dtype=np.float64).reshape(len(rows), 5)  # None becomes NaN
        return FilterColumnsData(
            ids=table[:, 0].astype(np.int64),
            person_ids=table[:, 1],
            camera_ids=table[:, 2],
            timestamps=table[:, 3],
            inserted=table[:, 4],
        )

    def ids_matching_text(self, filters: Filters) -> np.ndarray:
        """The ids whose key and metadata pass ``filters``' ``key_prefix`` and ``metadata`` conditions
        (the others are the in-memory columns' job), ascending."""
        terms: list[str] = []
        params: list[Any] = []
        if filters.key_prefix is not None:
            low, high = prefix_range(filters.key_prefix)
            terms.append(f"{KEY_FIELD} >= ?")  # the key's unique index answers the range
            params.append(low)
            if high is not None:
                terms.append(f"{KEY_FIELD} < ?")
                params.append(high)
        for name, value in (filters.metadata or {}).items():
            path = f'$."{name}"'  # names are restricted to letters, digits, '_' and '-' (MetadataMatch)
            # As in Milvus: strings equal strings, numbers compare numerically, true and false are 1 and 0.
            kinds = "('text')" if isinstance(value, str) else "('integer', 'real', 'true', 'false')"
            terms.append(f"json_type(metadata, ?) IN {kinds} AND json_extract(metadata, ?) = ?")
            params.extend((path, path, value))
        where = " AND ".join(terms) if terms else "1"
        rows = self._reader().execute(f"SELECT id FROM items WHERE {where} ORDER BY id", params).fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    def close(self) -> None:
        with self._readers_lock:
            readers = list(self._readers.values())
            self._readers.clear()
        for conn in [*readers, self._conn]:
            conn.close()
