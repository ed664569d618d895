"""The one item schema: the fields every gallery item carries, declared once in :class:`ItemFields`.

Everything else is derived from that declaration: the value types :class:`GalleryItem` (what callers
store), :class:`GalleryRecord` (what ``get`` returns) and :class:`Hit` (a search result), the SQLite
columns and the Milvus schema of the backends, the API models (a test checks them) and the indexing
job's rows. Adding a field is one declaration below; galleries written before it gain the column when
they are next opened for writing (every field is nullable, so old items read it as ``None``).

Each field says its ``kind`` — ``int``, ``float``, ``text`` or ``json`` — which fixes how it is
validated (:func:`item_values`) and stored; ``unique`` marks the key that upserts replace by. Fields in
:class:`StoredFields` beyond :class:`ItemFields` are ``managed``: the gallery sets them (``inserted_at``),
callers cannot, and they come back with every record and hit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from reid.errors import GalleryError

FieldKind = Literal["int", "float", "text", "json"]
ItemValues = dict[str, Any]
"""An item's fields by name, validated: plain ints, floats, strings, a JSON-safe dict, or ``None``."""


def _field(kind: FieldKind, description: str, *, unique: bool = False, managed: bool = False) -> Any:
    info = {"kind": kind, "description": description, "unique": unique, "managed": managed}
    if kind == "json":
        return field(default_factory=dict, hash=False, metadata=info)
    return field(default=None, metadata=info)


@dataclass(frozen=True, kw_only=True, eq=False)
class ItemFields:
    """The fields of a gallery item (every one optional). This class is the schema's declaration."""

    key: str | None = _field("text", "your unique id; an existing key is replaced (upsert)", unique=True)
    person_id: int | None = _field("int", "the person's id, when known")
    camera_id: int | None = _field("int", "the camera that took the crop, when known")
    source: str | None = _field("text", "where the crop came from (a path, URL or file name)")
    timestamp: float | None = _field("float", "when the crop was taken, POSIX seconds")
    metadata: Mapping[str, Any] = _field("json", "any JSON object, returned with hits")
    track_id: str | None = _field("text", "the tracker's track the crop belongs to (search can group by it)")

    def field_values(self) -> ItemValues:
        """The schema fields this value has (no vector, id or score), as given."""
        return {name: getattr(self, name) for name in FIELD_NAMES if hasattr(self, name)}


@dataclass(frozen=True, kw_only=True, eq=False)
class StoredFields(ItemFields):
    """The fields of a stored item: the caller's, plus those the gallery manages."""

    inserted_at: float | None = _field(
        "float",
        "when the gallery stored the item, POSIX seconds (set by the gallery; items stored before galleries "
        "recorded it read the time of that upgrade)",
        managed=True,
    )


@dataclass(frozen=True)
class FieldSpec:
    """One field of the schema, as a backend needs it to store the field."""

    name: str
    kind: FieldKind
    description: str
    unique: bool = False
    managed: bool = False


ITEM_FIELDS: tuple[FieldSpec, ...] = tuple(FieldSpec(name=f.name, **f.metadata) for f in fields(StoredFields))
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in ITEM_FIELDS)
INPUT_FIELDS: tuple[FieldSpec, ...] = tuple(f for f in ITEM_FIELDS if not f.managed)
"""The fields a caller gives (the managed ones left out)."""
KEY_FIELD = next(f.name for f in ITEM_FIELDS if f.unique)
INSERTED_FIELD = "inserted_at"
# The stores' integers (ids, metadata values): SQLite's and Milvus's signed 64 bits.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TIMESTAMP_FIELD = "timestamp"  # when the crop was taken (capture time filters and retention count from it)


@dataclass(frozen=True, kw_only=True, eq=False)
class GalleryItem(ItemFields):
    """One crop to store: its embedding plus the item fields. ``key`` is needed for upsert.

    ``metadata`` must be JSON-serialisable. Equality is identity: the vector is an array, which has no
    single truth value.
    """

    vector: np.ndarray


@dataclass(frozen=True, kw_only=True, eq=False)
class GalleryRecord(StoredFields):
    """A stored item as ``get`` returns it: its gallery ``id``, its stored vector and its fields."""

    id: int
    vector: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Hit(StoredFields):
    """One search result. ``score`` is the inner product (cosine similarity; higher is closer), or
    ``1 - re-ranked distance`` when the search re-ranks."""

    id: int
    score: float

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return {"id": self.id, "score": self.score, **values, "metadata": dict(self.metadata)}


def fields_of(source: object) -> ItemValues:
    """The caller's item fields ``source`` (a record, a request model) has, by name: a field added to the
    schema flows from every source that carries it (managed fields never do)."""
    return {spec.name: getattr(source, spec.name) for spec in INPUT_FIELDS if hasattr(source, spec.name)}


def _text(value: Any, name: str, key: Any) -> str:
    if not isinstance(value, str):
        raise GalleryError(f"item {key!r}: {name} must be a string, got {value!r}")
    return value


def _number(value: Any, cast: type[int] | type[float], name: str, key: Any) -> int | float:
    try:
        number = cast(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise GalleryError(f"item {key!r}: {name} must be {cast.__name__}, got {value!r}") from exc
    if not math.isfinite(number):
        raise GalleryError(f"item {key!r}: {name} must be finite, got {value!r}")
    return number


def _json(value: Any, name: str, key: Any) -> dict[str, Any]:
    try:
        plain: dict[str, Any] = json.loads(json.dumps(dict(value), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise GalleryError(f"item {key!r}: {name} is not JSON-serialisable: {exc}") from exc
    return plain


def _check(spec: FieldSpec, value: Any, key: Any) -> Any:
    if spec.kind == "json":
        return _json(value if value is not None else {}, spec.name, key)
    if value is None:
        return None
    if spec.kind == "text":
        return _text(value, spec.name, key)
    return _number(value, int if spec.kind == "int" else float, spec.name, key)


def item_values(item: ItemFields, *, inserted_at: float) -> ItemValues:
    """The row to store: ``item``'s fields checked and converted to plain values (or
    :class:`GalleryError` naming the field), stamped with its insertion time."""
    key = item.key
    values = {spec.name: _check(spec, getattr(item, spec.name), key) for spec in INPUT_FIELDS}
    return {**values, INSERTED_FIELD: float(inserted_at)}


def check_text_lengths(values: ItemValues, limits: Mapping[str, int], backend: str) -> None:
    """Refuse text longer (in UTF-8 bytes) than the storage can hold, before anything is written."""
    for name, limit in limits.items():
        text = values.get(name)
        if text is not None and len(text.encode()) > limit:
            raise GalleryError(
                f"item {values[KEY_FIELD]!r}: its {name} is longer than {backend}'s {limit} bytes"
            )
