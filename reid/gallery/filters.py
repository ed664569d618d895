"""Search-time filters, one vocabulary for the library, the HTTP API and the CLI.

The names of :class:`Filters`' fields are the vocabulary: HTTP takes the same names as JSON fields and
the CLI as flags (``cameras_in`` is ``--cameras-in``). A backend translates a :class:`Filters` into its
own terms (a FAISS id mask, a Milvus boolean expression); the meaning is defined here.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reid.errors import ConfigError
from reid.gallery.items import INSERTED_FIELD, INT64_MAX, INT64_MIN, TIMESTAMP_FIELD

MetadataValue = str | int | float
# The inclusive time ranges: the item field each bounds, and the conditions holding its lower and upper bound.
TIME_RANGES = ((TIMESTAMP_FIELD, "time_from", "time_to"), (INSERTED_FIELD, "inserted_from", "inserted_to"))
# Top-level metadata keys a filter may name: safe inside a SQLite JSON path and a Milvus expression alike.
METADATA_KEY = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def _int_set(values: Iterable[int] | None) -> frozenset[int] | None:
    return None if values is None else frozenset(int(v) for v in values)


def _condition(help: str, value: Any, *, many: bool = False) -> Any:
    """A filter field; ``value``/``many`` tell the CLI how to parse it (one value, or a list)."""
    return field(default=None, metadata={"help": help, "value": value, "many": many})


def _metadata_value(key: str, value: object) -> MetadataValue:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ConfigError(
        f"metadata filter {key!r}: give a string, a 64-bit integer or a finite number, got {value!r}"
    )


class MetadataMatch(Mapping[str, MetadataValue]):
    """Metadata conditions, ``{key: value}``: an item passes when its metadata holds every ``key`` with
    an equal value (strings equal strings; numbers compare numerically, 3 == 3.0, and stored true and
    false are 1 and 0, as both stores compare them). Read-only and hashable, so :class:`Filters` stays
    hashable."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        given = dict(values)
        for key in given:
            if not isinstance(key, str) or not METADATA_KEY.fullmatch(key):
                raise ConfigError(f"metadata filter keys are 1-128 letters, digits, '_' or '-'; got {key!r}")
        self._values = {key: _metadata_value(key, given[key]) for key in sorted(given)}

    def __getitem__(self, key: str) -> MetadataValue:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(frozenset(self._values.items()))

    def __repr__(self) -> str:
        return f"MetadataMatch({self._values!r})"


def metadata_condition(text: str) -> tuple[str, MetadataValue]:
    """``KEY=VALUE`` from the command line: VALUE is a number when it reads as one, else a string
    (quote it in JSON, ``site='"3"'``, to match the string ``"3"``)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ConfigError(f"a metadata condition is KEY=VALUE, got {text!r}")
    if len(value) > 1 and value[0] == value[-1] == '"':
        return key, value[1:-1]
    for number in (int, float):
        try:
            return key, number(value)
        except ValueError:
            continue
    return key, value


@dataclass(frozen=True)
class Filters:
    """Search-time restrictions; every condition that is set must hold (AND).

    Any collection is accepted for the id sets; they are stored as frozensets so filters are hashable.
    Items without a camera are dropped by ``cameras_in`` and kept by ``cameras_not_in`` and
    ``exclude_camera``; items without a timestamp are dropped when either time bound is set, items
    without a key by ``key_prefix``. Time bounds are inclusive.
    """

    cameras_in: Collection[int] | None = _condition("keep only items from these cameras", int, many=True)
    cameras_not_in: Collection[int] | None = _condition("drop items from these cameras", int, many=True)
    person_ids: Collection[int] | None = _condition("keep only items of these persons", int, many=True)
    exclude_camera: int | None = _condition(
        "the query's own camera, whose items are dropped (the re-identification protocol)", int
    )
    time_from: float | None = _condition("keep items with timestamp >= this (POSIX seconds)", float)
    time_to: float | None = _condition("keep items with timestamp <= this (POSIX seconds)", float)
    key_prefix: str | None = _condition("keep only items whose key starts with this", str)
    inserted_from: float | None = _condition("keep items stored at or after this (POSIX seconds)", float)
    inserted_to: float | None = _condition("keep items stored at or before this (POSIX seconds)", float)
    metadata: Mapping[str, MetadataValue] | None = _condition(
        "keep only items whose metadata has these top-level values (KEY=VALUE; numbers compare numerically)",
        metadata_condition,
        many=True,
    )

    def __post_init__(self) -> None:
        for name in ("cameras_in", "cameras_not_in", "person_ids"):
            object.__setattr__(self, name, _int_set(getattr(self, name)))
        for _, low, high in TIME_RANGES:
            start, end = getattr(self, low), getattr(self, high)
            if start is not None and end is not None and start > end:
                raise ConfigError(f"{low} ({start}) is after {high} ({end})")
        if self.key_prefix == "":
            raise ConfigError("key_prefix must not be empty")
        if self.metadata is not None:
            match = MetadataMatch(self.metadata)
            object.__setattr__(self, "metadata", match if match else None)

    def as_dict(self) -> dict[str, Any]:
        """The conditions that are set, as plain JSON values (sets sorted)."""
        plain: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, MetadataMatch):
                value = dict(value)
            if value is not None:
                plain[name] = value
        return plain

    def time_bounds(self) -> list[tuple[str, float | None, float | None]]:
        """``(item field, lower, upper)`` for each time range with a bound set (``None``: unbounded)."""
        bounds = [(name, getattr(self, low), getattr(self, high)) for name, low, high in TIME_RANGES]
        return [(name, start, end) for name, start, end in bounds if start is not None or end is not None]

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


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """``[low, high)`` holding exactly the strings that start with ``prefix`` (``high`` ``None``: no upper
    bound), in code-point order, which is UTF-8 byte order: a prefix test that a store's ordered text
    index can answer, with no wildcard characters to escape."""
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return prefix, None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters: skip to the next one
        following = 0xE000
    return prefix, stem[:-1] + chr(following)
