"""A :class:`reid.gallery.GalleryStore` on Milvus (a server URI, or a local ``.db`` file run by milvus-lite).

One collection holds every item: an int64 primary key ``id`` we assign, the item's fields (nullable
scalars, so "unknown" stays distinct from any value) and its vector. The gallery's identity lives in the
collection properties: ``reid.dim``, ``reid.fingerprint`` and ``reid.next_id``. Ids come from that
counter and are reserved (the property is written) before the rows are inserted, so an id is never
handed out twice, even after a crash or a delete of the newest item.

Search uses the inner-product metric; filters become Milvus boolean expressions so they are applied
inside the index search, not after it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import ConnectError, MilvusException, MilvusUnavailableException

from reid.errors import ConfigError, GalleryError, GalleryUnavailable, ModelMismatch, NotFound
from reid.gallery.backends import DEFAULT_COLLECTION, MILVUS_MAX_TOPK
from reid.gallery.ranking import best_first
from reid.gallery.rerank import RerankConfig, rerank_candidates
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

INDEX_KINDS = {"FLAT": {}, "IVF_FLAT": {"nlist": 128}, "HNSW": {"M": 16, "efConstruction": 200}}
MAX_KEY_LENGTH = 2048
MAX_TEXT_LENGTH = 4096
CHUNK = 1000  # ids, keys or rows per request: keeps expressions, results and inserts bounded
SCALARS = ("key", "person_id", "camera_id", "source", "timestamp", "metadata")
# Key lookups (resume, upsert, lookup) must stay index probes as the gallery grows. A search's filter
# becomes a bitset from a scan of small numeric columns, cheap next to the vector work; indexing those
# too would cost each new collection seconds on milvus-lite.
SCALAR_INDEXED = ("key",)
CONNECT_FAILED = 2  # pymilvus Status.CONNECT_FAILED: the client could not reach the server
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


def filter_expression(filters: Filters | None) -> str:
    """The Milvus boolean expression for ``filters`` (``""``: no restriction).

    Null fields fail every comparison, so ``not (camera_id in [...])`` keeps items without a camera while
    ``camera_id in [...]``, ``person_id in [...]`` and the time bounds drop unknown values, as
    :class:`Filters` specifies.
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
    if filters.time_from is not None:
        terms.append(f"timestamp >= {float(filters.time_from)!r}")
    if filters.time_to is not None:
        terms.append(f"timestamp <= {float(filters.time_to)!r}")
    return " and ".join(f"({term})" for term in terms)


def _optional(value: Any, cast: type) -> Any:
    return None if value is None else cast(value)


def _check_lengths(items: Sequence[GalleryItem]) -> None:
    """Refuse text the VARCHAR fields cannot hold before any id is reserved."""
    for item in items:
        fields = (("key", item.key, MAX_KEY_LENGTH), ("source", item.source, MAX_TEXT_LENGTH))
        for name, text, limit in fields:
            if text is not None and len(text.encode()) > limit:
                raise GalleryError(f"item {item.key!r}: its {name} is longer than Milvus's {limit} bytes")


def _row(item_id: int, item: GalleryItem, vector: np.ndarray) -> dict[str, Any]:
    try:
        metadata = json.loads(json.dumps(dict(item.metadata)))
    except (TypeError, ValueError) as exc:
        raise GalleryError(f"item {item.key!r}: metadata is not JSON-serialisable ({exc})") from None
    return {
        "id": item_id,
        "key": item.key,
        "person_id": _optional(item.person_id, int),
        "camera_id": _optional(item.camera_id, int),
        "source": item.source,
        "timestamp": _optional(item.timestamp, float),
        "metadata": metadata,
        "vector": vector.tolist(),
    }


def _record(row: dict[str, Any]) -> GalleryRecord:
    return GalleryRecord(
        id=int(row["id"]),
        vector=np.asarray(row["vector"], dtype=np.float32),
        **{name: row.get(name) for name in SCALARS[:-1]},
        metadata=row.get("metadata") or {},
    )


class MilvusGallery:
    """The Milvus :class:`reid.gallery.GalleryStore`; open it with :meth:`open` or ``open_gallery``."""

    def __init__(self, client: MilvusClient, uri: str, collection: str, index: str) -> None:
        self.uri = uri
        self.collection = collection
        self.index_kind = index
        self._client: MilvusClient | None = client
        self._write_lock = threading.Lock()
        self._properties = self._read_properties()

    # --- opening --------------------------------------------------------------------------------------

    @classmethod
    @_translated
    def open(
        cls,
        location: str | Path,
        *,
        dim: int | None = None,
        fingerprint: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        index: str | None = None,
    ) -> MilvusGallery:
        """Open the gallery ``collection`` at ``location``, creating it when missing (``dim`` required).

        ``location`` is a Milvus URI (``http://host:19530``) or a local file path, which milvus-lite
        serves in-process. ``index`` is ``"FLAT"`` (exact, the default), ``"IVF_FLAT"`` or ``"HNSW"``,
        fixed at creation. A ``dim`` or ``fingerprint`` that differs from the gallery's raises
        :class:`ModelMismatch`; a gallery created without a fingerprint records the first one given
        while empty.
        """
        if index is not None and index not in INDEX_KINDS:
            raise ConfigError(f"unknown Milvus index {index!r}; choose one of {sorted(INDEX_KINDS)}")
        uri = str(location)
        client = MilvusClient(uri)
        try:
            if client.has_collection(collection):
                client.load_collection(collection)
            elif dim is None:
                raise GalleryError(f"no gallery collection {collection!r} at {uri}; pass dim= to create one")
            else:
                _create_collection(client, collection, dim, fingerprint, index or "FLAT")
            gallery = cls(client, uri, collection, index or "FLAT")
            gallery._check_identity(dim=dim, fingerprint=fingerprint, index=index)
        except BaseException:
            client.close()
            raise
        return gallery

    def _read_properties(self) -> dict[str, str]:
        described = self._conn.describe_collection(self.collection)
        properties = dict(described.get("properties") or {})
        if "reid.dim" not in properties:
            raise GalleryError(f"collection {self.collection!r} at {self.uri} is not a reid gallery")
        self.index_kind = self._conn.describe_index(self.collection, "vector").get("index_type", "?")
        return properties

    def _set_properties(self, **values: str) -> None:
        self._conn.alter_collection_properties(self.collection, properties=values)
        self._properties.update(values)

    def _check_identity(self, *, dim: int | None, fingerprint: str | None, index: str | None) -> None:
        where = f"gallery {self.collection!r} at {self.uri}"
        if dim is not None and dim != self.dim:
            raise ModelMismatch(f"{where} holds {self.dim}-d embeddings, not {dim}-d")
        if index is not None and index != self.index_kind:
            raise GalleryError(f"{where} uses index {self.index_kind!r}, not {index!r}")
        if fingerprint is None or fingerprint == self.fingerprint:
            return
        if self.fingerprint is None and self.count() == 0:
            self._set_properties(**{"reid.fingerprint": fingerprint})
            return
        raise ModelMismatch(f"{where} was built with model {self.fingerprint!r}, not {fingerprint!r}")

    # --- identity -------------------------------------------------------------------------------------

    @property
    def _conn(self) -> MilvusClient:
        if self._client is None:
            raise GalleryError(f"gallery {self.collection!r} at {self.uri} is closed")
        return self._client

    @property
    def dim(self) -> int:
        return int(self._properties["reid.dim"])

    @property
    def fingerprint(self) -> str | None:
        return self._properties.get("reid.fingerprint") or None

    # --- writes ---------------------------------------------------------------------------------------

    def _write(self, items: Sequence[GalleryItem], fingerprint: str | None, *, replace: bool) -> list[int]:
        check_fingerprint(self.fingerprint, fingerprint)
        items = list(items)
        if not items:
            return []
        vectors = item_matrix(items, self.dim)
        _check_lengths(items)
        keys = [item.key for item in items if item.key is not None]
        repeated = sorted(key for key, n in Counter(keys).items() if n > 1)
        if repeated:
            raise GalleryError(f"keys repeated within one call: {repeated[:10]}")
        with self._write_lock:
            held = self._ids_by_key(keys)
            if held and not replace:
                raise GalleryError(f"keys already in the gallery: {sorted(held)[:10]}")
            first = int(self._properties.get("reid.next_id", "1"))
            ids = list(range(first, first + len(items)))
            self._set_properties(**{"reid.next_id": str(first + len(items))})  # reserve before writing
            rows = [_row(i, item, vector) for i, item, vector in zip(ids, items, vectors, strict=True)]
            for chunk in _chunks(rows):  # Milvus refuses an insert request above 64 MB
                self._conn.insert(self.collection, list(chunk))
            if held:  # after the insert: a crash in between leaves a duplicate key, never a lost item
                self._conn.delete(self.collection, ids=sorted(held.values()))
        return ids

    @_translated
    def add(self, items: Sequence[GalleryItem], *, fingerprint: str | None = None) -> list[int]:
        """Store new items; returns their ids. Existing or repeated keys raise ``GalleryError``."""
        return self._write(items, fingerprint, replace=False)

    @_translated
    def upsert(self, items: Sequence[GalleryItem], *, fingerprint: str | None = None) -> list[int]:
        """Insert or replace by key (every item needs one). A replaced item gets a new id."""
        require_keys(items)
        return self._write(items, fingerprint, replace=True)

    @_translated
    def delete(self, ids: Iterable[int]) -> None:
        """Remove items by id; any unknown id raises ``NotFound`` and nothing is removed."""
        unique = sorted({int(i) for i in ids})
        if not unique:
            return
        with self._write_lock:
            self._rows_by_id(unique, ["id"])  # raises NotFound before anything is removed
            self._conn.delete(self.collection, ids=unique)

    # --- reads ----------------------------------------------------------------------------------------

    def _query(self, expression: str, fields: list[str]) -> list[dict[str, Any]]:
        return list(self._conn.query(self.collection, filter=expression, output_fields=fields))

    def _ids_by_key(self, keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(set(keys))):
            # milvus-lite rejects filter templates and \u escapes; a JSON string holding raw Unicode is
            # a valid Milvus literal (quotes and backslashes escaped).
            rows = self._query("key in " + json.dumps(list(chunk), ensure_ascii=False), ["id", "key"])
            found.update((row["key"], int(row["id"])) for row in rows)
        return found

    def _rows_by_id(self, ids: Sequence[int], fields: list[str]) -> dict[int, dict[str, Any]]:
        rows: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(sorted(set(ids))):
            rows.update((int(row["id"]), row) for row in self._query(f"id in {_ints(chunk)}", fields))
        missing = sorted(set(ids) - rows.keys())
        if missing:
            raise NotFound(f"no gallery items with ids {missing[:10]}")
        return rows

    @_translated
    def count(self) -> int:
        return int(self._query("", ["count(*)"])[0]["count(*)"])

    @_translated
    def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` the gallery holds."""
        return set(self._ids_by_key(list(keys)))

    @_translated
    def lookup(self, keys: Iterable[str]) -> list[int]:
        """Ids of ``keys``, in order; an unknown key raises ``NotFound``."""
        keys = list(keys)
        found = self._ids_by_key(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            raise NotFound(f"no gallery items with keys {missing[:10]}")
        return [found[key] for key in keys]

    @_translated
    def get(self, ids: Iterable[int]) -> list[GalleryRecord]:
        """Stored items in the order asked; an unknown id raises ``NotFound``."""
        wanted = [int(i) for i in ids]
        rows = self._rows_by_id(wanted, ["id", *SCALARS, "vector"])
        return [_record(rows[i]) for i in wanted]

    @_translated
    def search(
        self,
        vectors: np.ndarray,
        k: int = 10,
        filters: Filters | Sequence[Filters] | None = None,
        *,
        fingerprint: str | None = None,
        rerank: RerankConfig | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits per query row, best first (ties within
        :data:`~reid.gallery.ranking.SCORE_TIE_TOLERANCE`: lower id first); ``filters`` is one
        :class:`Filters` for all queries or one per query; ``rerank`` as :meth:`GalleryStore.search`."""
        check_fingerprint(self.fingerprint, fingerprint)
        k = check_k(k)
        fetch = max(k, rerank.top_n) if rerank is not None else k
        if fetch > MILVUS_MAX_TOPK:
            raise ConfigError(f"Milvus returns at most {MILVUS_MAX_TOPK} hits per query; asked for {fetch}")
        queries = as_unit_matrix(vectors, self.dim, what="query vectors")
        hits: list[list[Hit]] = [[] for _ in queries]
        for group_filters, rows in group_queries(filters, len(queries)).items():  # one call per filter
            results = self._conn.search(
                self.collection,
                data=queries[rows].tolist(),
                limit=fetch,
                filter=filter_expression(group_filters),
                output_fields=list(SCALARS),
                search_params={"metric_type": "IP"},
            )
            for row, found in zip(rows, results, strict=True):
                hits[row] = [_hit(entry) for entry in found]
        if rerank is not None:
            hits = self._reranked(queries, hits, rerank)
        return [_best_first(row)[:k] for row in hits]

    def _reranked(self, queries: np.ndarray, hits: list[list[Hit]], config: RerankConfig) -> list[list[Hit]]:
        ids = np.full((len(hits), max(map(len, hits), default=0)), -1, dtype=np.int64)
        for row, found in enumerate(hits):
            ids[row, : len(found)] = [hit.id for hit in found]
        scores = rerank_candidates(queries, ids, self._vectors, config)
        return [
            [dataclasses.replace(hit, score=float(score)) for hit, score in zip(found, row, strict=False)]
            for found, row in zip(hits, scores, strict=True)
        ]

    def _vectors(self, ids: list[int]) -> np.ndarray:
        rows = self._rows_by_id(ids, ["id", "vector"])
        return np.asarray([rows[i]["vector"] for i in ids], dtype=np.float32).reshape(len(ids), self.dim)

    @_translated
    def stats(self) -> GalleryStats:
        """Counts and identity. ``last_seq`` is the last id handed out; Milvus keeps no snapshot."""
        count = self.count()
        path = Path(self.uri)
        return GalleryStats(
            count=count,
            dim=self.dim,
            fingerprint=self.fingerprint,
            index=self.index_kind,
            trained=True,
            index_vectors=count,
            device="milvus",
            disk_bytes=path.stat().st_size if path.is_file() else 0,
            last_seq=int(self._properties.get("reid.next_id", "1")) - 1,
            snapshot_seq=None,
        )

    @_translated
    def export(self, out_dir: str | Path) -> Path:
        """Write ``vectors.npy`` (id order), ``items.jsonl`` (same order, ``row`` = vectors row) and
        ``gallery.json`` under ``out_dir``, which must not hold them already."""
        out = export_dir(out_dir)
        ids = sorted(self._all_ids())
        vectors = np.lib.format.open_memmap(
            out / "vectors.npy", mode="w+", dtype=np.float32, shape=(len(ids), self.dim)
        )
        with (out / "items.jsonl").open("w", encoding="utf-8") as f:
            for start, chunk in enumerate(_chunks(ids)):
                rows = self._rows_by_id(chunk, ["id", *SCALARS, "vector"])
                for offset, item_id in enumerate(chunk):
                    row_number = start * CHUNK + offset
                    vectors[row_number] = rows[item_id].pop("vector")
                    f.write(json.dumps({"row": row_number, **rows[item_id]}, sort_keys=True) + "\n")
        vectors.flush()
        del vectors
        summary = {"dim": self.dim, "fingerprint": self.fingerprint, "index": self.index_kind}
        (out / "gallery.json").write_text(json.dumps({**summary, "count": len(ids)}, indent=2) + "\n")
        return out

    def _all_ids(self) -> list[int]:
        iterator = self._conn.query_iterator(self.collection, batch_size=CHUNK, output_fields=["id"])
        ids: list[int] = []
        try:
            while batch := iterator.next():
                ids.extend(int(row["id"]) for row in batch)
        finally:
            iterator.close()
        return ids

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

    def __enter__(self) -> MilvusGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MilvusGallery({self.uri!r}, collection={self.collection!r}, dim={self.dim})"


def _best_first(hits: list[Hit]) -> list[Hit]:
    scores = np.array([hit.score for hit in hits])
    order = best_first(scores, np.array([hit.id for hit in hits], dtype=np.int64))
    return [hits[i] for i in order]


def _hit(entry: dict[str, Any]) -> Hit:
    fields = entry.get("entity", {})
    return Hit(
        id=int(entry["id"]),
        score=float(entry["distance"]),
        **{name: fields.get(name) for name in SCALARS[:-1]},
        metadata=fields.get("metadata") or {},
    )


def _create_collection(
    client: MilvusClient, name: str, dim: int, fingerprint: str | None, index: str
) -> None:
    if dim < 1:
        raise ConfigError(f"gallery dim must be positive, got {dim}")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("key", DataType.VARCHAR, max_length=MAX_KEY_LENGTH, nullable=True)
    schema.add_field("person_id", DataType.INT64, nullable=True)
    schema.add_field("camera_id", DataType.INT64, nullable=True)
    schema.add_field("source", DataType.VARCHAR, max_length=MAX_TEXT_LENGTH, nullable=True)
    schema.add_field("timestamp", DataType.DOUBLE, nullable=True)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index_params = client.prepare_index_params()
    index_params.add_index("vector", index_type=index, metric_type="IP", params=INDEX_KINDS[index])
    for field in SCALAR_INDEXED:
        index_params.add_index(field, index_type="INVERTED")
    properties = {"reid.dim": str(dim), "reid.next_id": "1", "reid.fingerprint": fingerprint or ""}
    client.create_collection(name, schema=schema, index_params=index_params, properties=properties)
    client.load_collection(name)
    logger.info("created Milvus gallery collection %r (%d-d, %s)", name, dim, index)
