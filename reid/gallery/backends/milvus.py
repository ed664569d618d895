"""The Milvus storage (a server URI, or a local ``.db`` file run by milvus-lite).

One collection holds every item: an int64 primary key ``id`` we assign, one nullable field per item
field (:mod:`reid.gallery.items`; so "unknown" stays distinct from any value) and the vector. The
gallery's identity lives in the collection properties: ``reid.dim``, ``reid.fingerprint`` and
``reid.next_id``. Ids come from that counter and are reserved (the property is written) before the rows
are inserted, so an id is never handed out twice, even after a crash or a delete of the newest item.
A collection written before an item field was declared gains the field when it is next opened; where
the server cannot add fields (milvus-lite), old items and queries go on working, the field reads as
``None`` and writing a value to it is refused.

Search uses the inner-product metric; filters become Milvus boolean expressions so they are applied
inside the index search, not after it.

Deletes are tombstones until compaction rewrites the segments: :meth:`MilvusStorage.scrub` flushes and
compacts, and a server's garbage collector removes the old segment files after its drop tolerance
(``dataCoord.gc.dropTolerance``, 3 hours by default). A retention policy by insertion time also sets the
collection TTL (``collection.ttl.seconds``), so a server expires items even while no reid process runs;
milvus-lite accepts the property but does not enforce it, and the sweep does the work there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, ClassVar, ParamSpec, TypeVar

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import ConnectError, MilvusException, MilvusUnavailableException

from reid.errors import ConfigError, GalleryError, GalleryUnavailable
from reid.gallery.filters import Filters, prefix_range
from reid.gallery.items import FIELD_NAMES, INSERTED_FIELD, ITEM_FIELDS, KEY_FIELD, FieldSpec, ItemValues
from reid.gallery.registry import DEFAULT_COLLECTION, MILVUS_MAX_TOPK
from reid.gallery.retention import RetentionPolicy
from reid.gallery.storage import Identity, OpenRequest, SearchParams

logger = logging.getLogger(__name__)

INDEX_KINDS = {"FLAT": {}, "IVF_FLAT": {"nlist": 128}, "HNSW": {"M": 16, "efConstruction": 200}}
MAX_KEY_LENGTH = 2048
MAX_TEXT_LENGTH = 4096
CHUNK = 1000  # ids, keys or rows per request: keeps expressions, results and inserts bounded
_DATA_TYPES = {
    "int": DataType.INT64,
    "float": DataType.DOUBLE,
    "text": DataType.VARCHAR,
    "json": DataType.JSON,
}
_TEXT_LIMITS = {
    spec.name: MAX_KEY_LENGTH if spec.unique else MAX_TEXT_LENGTH
    for spec in ITEM_FIELDS
    if spec.kind == "text"
}
# Key lookups (resume, upsert, lookup) must stay index probes as the gallery grows. A search's filter
# becomes a bitset from a scan of small numeric columns, cheap next to the vector work; indexing those
# too would cost each new collection seconds on milvus-lite.
SCALAR_INDEXED = tuple(spec.name for spec in ITEM_FIELDS if spec.unique)
CONNECT_FAILED = 2  # pymilvus Status.CONNECT_FAILED: the client could not reach the server
TTL_PROPERTY = "collection.ttl.seconds"
COMPACTION_WAIT_S = 60.0  # how long scrub() waits for compaction before leaving it to the server
P = ParamSpec("P")
R = TypeVar("R")


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    """Re-raise pymilvus errors as domain errors: an unreachable or overloaded server is
    :class:`GalleryUnavailable` (retry later), anything else Milvus refuses is :class:`GalleryError`."""

    @wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except MilvusException as exc:
            message = f"Milvus: {exc.message}"
            if isinstance(exc, ConnectError | MilvusUnavailableException) or exc.code == CONNECT_FAILED:
                raise GalleryUnavailable(message) from exc
            raise GalleryError(message) from exc

    return call


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _ints(values: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in sorted(values)) + "]"


def _text(value: str | Sequence[str]) -> str:
    """A Milvus string (or list of strings) literal. milvus-lite rejects filter templates and \\u
    escapes; JSON holding raw Unicode is a valid Milvus literal (quotes and backslashes escaped)."""
    return json.dumps(value if isinstance(value, str) else list(value), ensure_ascii=False)


def filter_expression(filters: Filters | None) -> str:
    """The Milvus boolean expression for ``filters`` (``""``: no restriction).

    Null fields fail every comparison, so ``not (camera_id in [...])`` keeps items without a camera while
    ``camera_id in [...]``, ``person_id in [...]``, the time bounds and the key prefix drop unknown
    values, as :class:`Filters` specifies. The key prefix is a range (no ``like`` wildcards to escape).
    """
    if filters is None:
        return ""
    terms = []
    if filters.cameras_in is not None:
        terms.append(f"camera_id in {_ints(filters.cameras_in)}")
    if filters.excluded_cameras:
        terms.append(f"not (camera_id in {_ints(filters.excluded_cameras)})")
    if filters.person_ids is not None:
        terms.append(f"person_id in {_ints(filters.person_ids)}")
    for name, start, end in filters.time_bounds():
        if start is not None:
            terms.append(f"{name} >= {float(start)!r}")
        if end is not None:
            terms.append(f"{name} <= {float(end)!r}")
    if filters.key_prefix is not None:
        low, high = prefix_range(filters.key_prefix)
        terms.append(f"{KEY_FIELD} >= {_text(low)}")
        if high is not None:
            terms.append(f"{KEY_FIELD} < {_text(high)}")
    for name, value in (filters.metadata or {}).items():
        literal = _text(value) if isinstance(value, str) else repr(value)
        terms.append(f'metadata["{name}"] == {literal}')
    return " and ".join(f"({term})" for term in terms)


def _values(fields: dict[str, Any]) -> ItemValues:
    """A Milvus entity's item fields (a JSON field comes back null when it was never written)."""
    values = {name: fields.get(name) for name in FIELD_NAMES}
    values.update((spec.name, values[spec.name] or {}) for spec in ITEM_FIELDS if spec.kind == "json")
    return values


def _field_options(spec: FieldSpec) -> dict[str, Any]:
    if spec.kind == "text":
        return {"max_length": _TEXT_LIMITS[spec.name], "nullable": True}
    return {} if spec.kind == "json" else {"nullable": True}


class MilvusStorage:
    """The Milvus :class:`~reid.gallery.storage.Storage`; open it through ``open_gallery``."""

    backend: ClassVar[str] = "milvus"
    options: ClassVar[frozenset[str]] = frozenset({"collection", "read_only"})
    search_params: ClassVar[type[SearchParams] | None] = None
    text_limits: ClassVar[Mapping[str, int]] = _TEXT_LIMITS
    max_k: ClassVar[int | None] = MILVUS_MAX_TOPK

    def __init__(self, client: MilvusClient, uri: str, collection: str, *, read_only: bool = False) -> None:
        self.uri = uri
        self.collection = collection
        self.read_only = read_only
        self._client: MilvusClient | None = client
        self._write_lock = threading.Lock()
        self._properties, self._index, self._fields = self._describe()

    # --- opening --------------------------------------------------------------------------------------

    @classmethod
    @_translated
    def open(
        cls,
        request: OpenRequest,
        *,
        collection: str = DEFAULT_COLLECTION,
        read_only: bool = False,
    ) -> MilvusStorage:
        """Open the gallery ``collection`` at ``request.location``, creating it when missing (never with
        ``read_only``, which also refuses writes through this store and skips migrating and retention on
        open; a Milvus server has no writer lock, so other clients may still write).

        The location is a Milvus URI (``http://host:19530``) or a local file path, which milvus-lite
        serves in-process. ``index`` is ``"FLAT"`` (exact, the default), ``"IVF_FLAT"`` or ``"HNSW"``,
        fixed at creation.
        """
        index, dim = request.index, request.dim
        if index is not None and index not in INDEX_KINDS:
            raise ConfigError(f"unknown Milvus index {index!r}; choose one of {sorted(INDEX_KINDS)}")
        uri = str(request.location)
        client = MilvusClient(uri)
        try:
            if client.has_collection(collection):
                client.load_collection(collection)
            elif dim is None or read_only:
                hint = "" if read_only else "; pass dim= to create one"
                raise GalleryError(f"no gallery collection {collection!r} at {uri}{hint}")
            else:
                _create_collection(client, collection, dim, request.fingerprint, index or "FLAT")
            storage = cls(client, uri, collection, read_only=read_only)
            if index is not None and index != storage._index:
                raise GalleryError(f"{storage.where} uses index {storage._index!r}, not {index!r}")
            if not read_only:
                storage._migrate()
        except BaseException:
            client.close()
            raise
        return storage

    def _describe(self) -> tuple[dict[str, str], str, set[str]]:
        """The collection's properties, vector index type and field names."""
        described = self._conn.describe_collection(self.collection)
        properties = dict(described.get("properties") or {})
        if "reid.dim" not in properties:
            raise GalleryError(f"collection {self.collection!r} at {self.uri} is not a reid gallery")
        index = self._conn.describe_index(self.collection, "vector").get("index_type", "?")
        return properties, index, {field["name"] for field in described.get("fields", [])}

    def _migrate(self) -> None:
        """Add the fields of the item schema that this collection predates (nullable: old items read
        them as ``None``)."""
        for spec in ITEM_FIELDS:
            if spec.name in self._fields:
                continue
            options = {**_field_options(spec), "nullable": True}
            if spec.name == INSERTED_FIELD:  # old items read the time of this upgrade
                options["default_value"] = time.time()
            try:
                self._conn.add_collection_field(self.collection, spec.name, _DATA_TYPES[spec.kind], **options)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                logger.warning("%s lacks item field %r and this Milvus cannot add it", self.where, spec.name)
                continue
            logger.info("%s: added item field %r", self.where, spec.name)
            self._fields.add(spec.name)

    @property
    def _stored(self) -> list[str]:
        """The item fields this collection has."""
        return [name for name in FIELD_NAMES if name in self._fields]

    def _check_storable(self, rows: Sequence[ItemValues]) -> None:
        for spec in ITEM_FIELDS:
            name = spec.name
            if spec.managed or name in self._fields:  # a managed field it lacks is left out (warned)
                continue
            if any(row[name] not in (None, {}) for row in rows):
                raise GalleryError(
                    f"{self.where} predates the item field {name!r} and this Milvus cannot add it; "
                    "re-index into a new collection to store it"
                )

    def _set_properties(self, **values: str) -> None:
        self._conn.alter_collection_properties(self.collection, properties=values)
        self._properties.update(values)

    # --- identity -------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._client is None:
            raise GalleryError(f"{self.where} is closed")

    @property
    def _conn(self) -> MilvusClient:
        self._check_open()
        assert self._client is not None
        return self._client

    @property
    def where(self) -> str:
        return f"gallery {self.collection!r} at {self.uri}"

    @property
    def identity(self) -> Identity:
        properties = self._properties
        return Identity(int(properties["reid.dim"]), properties.get("reid.fingerprint") or None, self._index)

    @property
    def writable(self) -> bool:
        return not self.read_only

    @property
    def audit_path(self) -> Path:
        """Beside a milvus-lite file; for a server, in the working directory (set REID_AUDIT_LOG)."""
        name = f"{self.collection}.audit.jsonl"
        if "://" in self.uri:
            return Path.cwd() / f"reid-{name}"
        local = Path(self.uri)
        return local.with_name(f"{local.name}.{name}")

    @_translated
    def record_fingerprint(self, fingerprint: str) -> None:
        self._set_properties(**{"reid.fingerprint": fingerprint})

    @property
    def retention(self) -> RetentionPolicy | None:
        stored = self._properties.get("reid.retention")
        return RetentionPolicy.from_json(stored) if stored else None

    @_translated
    def record_retention(self, policy: RetentionPolicy | None) -> None:
        self._set_properties(**{"reid.retention": "" if policy is None else policy.to_json()})
        if policy is not None and policy.by == "inserted":
            self._set_properties(**{TTL_PROPERTY: str(max(1, round(policy.seconds)))})
        elif TTL_PROPERTY in self._properties:
            self._conn.drop_collection_properties(self.collection, property_keys=[TTL_PROPERTY])
            del self._properties[TTL_PROPERTY]

    # --- locking --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        self._check_open()
        yield

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        if self.read_only:
            raise GalleryError(f"{self.where} is open read-only")
        with self._write_lock:
            self._check_open()
            yield

    # --- writes (under writing()) ---------------------------------------------------------------------

    @_translated
    def write(self, rows: Sequence[ItemValues], vectors: np.ndarray, replaced: Sequence[int]) -> list[int]:
        self._check_storable(rows)
        first = int(self._properties.get("reid.next_id", "1"))
        ids = list(range(first, first + len(rows)))
        self._set_properties(**{"reid.next_id": str(first + len(rows))})  # reserve before writing
        entities = [
            {"id": i, **{name: values[name] for name in self._stored}, "vector": vector.tolist()}
            for i, values, vector in zip(ids, rows, vectors, strict=True)
        ]
        for chunk in _chunks(entities):  # Milvus refuses an insert request above 64 MB
            self._conn.insert(self.collection, list(chunk))
        if replaced:  # after the insert: a crash in between leaves a duplicate key, never a lost item
            self._conn.delete(self.collection, ids=list(replaced))
        return ids

    @_translated
    def delete(self, ids: Sequence[int]) -> None:
        for chunk in _chunks(ids):
            self._conn.delete(self.collection, ids=list(chunk))

    @_translated
    def scrub(self) -> None:
        """Flush the deletes and compact them out of the segments, waiting up to
        ``COMPACTION_WAIT_S`` (a server goes on alone; its GC then drops the old files)."""
        self._conn.flush(self.collection)
        job = self._conn.compact(self.collection)
        deadline = time.monotonic() + COMPACTION_WAIT_S
        while str(self._conn.get_compaction_state(job)) != "Completed":
            if time.monotonic() > deadline:
                logger.warning("%s: compaction %s still running; the server will finish it", self.where, job)
                return
            time.sleep(0.5)

    # --- reads (under reading()) ----------------------------------------------------------------------

    def _query(self, expression: str, fields: list[str]) -> list[dict[str, Any]]:
        return list(self._conn.query(self.collection, filter=expression, output_fields=fields))

    def _check_filterable(self, filters: Filters | None) -> None:
        if filters is None or INSERTED_FIELD in self._fields:
            return
        if filters.inserted_from is not None or filters.inserted_to is not None:
            raise GalleryError(
                f"{self.where} predates insertion times and this Milvus cannot add them: no filter or "
                "retention by insertion time (re-index into a new collection)"
            )

    @_translated
    def matching(self, filters: Filters) -> np.ndarray:
        self._check_filterable(filters)
        iterator = self._conn.query_iterator(
            self.collection, batch_size=CHUNK, filter=filter_expression(filters), output_fields=["id"]
        )
        return self._drain_ids(iterator)

    @_translated
    def ids_by_key(self, keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(set(keys))):
            expression = f"{KEY_FIELD} in {_text(chunk)}"
            found.update(
                (row[KEY_FIELD], int(row["id"])) for row in self._query(expression, ["id", KEY_FIELD])
            )
        return found

    def _by_id(self, ids: Iterable[int], fields: list[str]) -> dict[int, dict[str, Any]]:
        rows: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(sorted({int(i) for i in ids})):
            rows.update((int(row["id"]), row) for row in self._query(f"id in {_ints(chunk)}", fields))
        return rows

    @_translated
    def rows(self, ids: Iterable[int]) -> dict[int, ItemValues]:
        return {i: _values(row) for i, row in self._by_id(ids, ["id", *self._stored]).items()}

    @_translated
    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        rows = self._by_id(ids, ["id", "vector"])
        return np.asarray([rows[i]["vector"] for i in ids], dtype=np.float32).reshape(
            len(ids), self.identity.dim
        )

    @_translated
    def count(self) -> int:
        return int(self._query("", ["count(*)"])[0]["count(*)"])

    @_translated
    def all_ids(self) -> np.ndarray:
        return self._drain_ids(
            self._conn.query_iterator(self.collection, batch_size=CHUNK, output_fields=["id"])
        )

    @staticmethod
    def _drain_ids(iterator: Any) -> np.ndarray:
        ids: list[int] = []
        try:
            while batch := iterator.next():
                ids.extend(int(row["id"]) for row in batch)
        finally:
            iterator.close()
        return np.sort(np.asarray(ids, dtype=np.int64))

    @_translated
    def nearest(
        self, queries: np.ndarray, k: int, filters: Filters | None, params: SearchParams | None
    ) -> tuple[np.ndarray, np.ndarray, dict[int, ItemValues]]:
        self._check_filterable(filters)
        results = self._conn.search(
            self.collection,
            data=queries.tolist(),
            limit=k,
            filter=filter_expression(filters),
            output_fields=self._stored,
            search_params={"metric_type": "IP"},
        )
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        rows: dict[int, ItemValues] = {}
        for row, found in enumerate(results):
            for column, entry in enumerate(found):
                ids[row, column], scores[row, column] = int(entry["id"]), float(entry["distance"])
                rows[int(entry["id"])] = _values(entry.get("entity", {}))
        return scores, ids, rows

    def details(self) -> dict[str, Any]:
        """The collection, the last id handed out, and the disk use of a local milvus-lite store (a file
        or a folder; ``None`` on a server, which does not say)."""
        path = Path(self.uri)
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        return {
            "collection": self.collection,
            "last_id": int(self._properties.get("reid.next_id", "1")) - 1,
            "disk_bytes": sum(f.stat().st_size for f in files) if path.exists() else None,
        }

    # --- persistence ----------------------------------------------------------------------------------

    @_translated
    def save(self) -> None:
        """Flush buffered segments so a reopen reads them directly (inserts are durable without it)."""
        self._conn.flush(self.collection)

    def close(self) -> None:
        """Release the client; later calls raise ``GalleryError``."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"MilvusStorage({self.uri!r}, collection={self.collection!r}, {self.identity})"


def _create_collection(
    client: MilvusClient, name: str, dim: int, fingerprint: str | None, index: str
) -> None:
    if dim < 1:
        raise ConfigError(f"gallery dim must be positive, got {dim}")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    for spec in ITEM_FIELDS:
        schema.add_field(spec.name, _DATA_TYPES[spec.kind], **_field_options(spec))
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index_params = client.prepare_index_params()
    index_params.add_index("vector", index_type=index, metric_type="IP", params=INDEX_KINDS[index])
    for field in SCALAR_INDEXED:
        index_params.add_index(field, index_type="INVERTED")
    properties = {"reid.dim": str(dim), "reid.next_id": "1", "reid.fingerprint": fingerprint or ""}
    client.create_collection(name, schema=schema, index_params=index_params, properties=properties)
    client.load_collection(name)
    logger.info("created Milvus gallery collection %r (%d-d, %s)", name, dim, index)
