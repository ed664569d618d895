"""Search-time filters, one vocabulary for the library, the HTTP API and the CLI.

The names of :class:`Filters`' fields are the vocabulary: HTTP takes the same names as JSON fields and
the CLI as flags (``cameras_in`` is ``--cameras-in``). A backend translates a :class:`Filters` into its
own terms (a FAISS id mask, a Milvus boolean expression); the meaning is defined here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reid.errors import ConfigError


def _int_set(values: Iterable[int] | None) -> frozenset[int] | None:
    return None if values is None else frozenset(int(v) for v in values)


def _condition(help: str, value: type, *, many: bool = False) -> Any:
    """A filter field; ``value``/``many`` tell the CLI how to parse it (one value, or a list)."""
    return field(default=None, metadata={"help": help, "value": value, "many": many})


@dataclass(frozen=True)
class Filters:
    """Search-time restrictions; every condition that is set must hold (AND).

    Any collection is accepted for the id sets; they are stored as frozensets so filters are hashable.
    Items without a camera are dropped by ``cameras_in`` and kept by ``cameras_not_in`` and
    ``exclude_camera``; items without a timestamp are dropped when either time bound is set.
    """

    cameras_in: Collection[int] | None = _condition("keep only items from these cameras", int, many=True)
    cameras_not_in: Collection[int] | None = _condition("drop items from these cameras", int, many=True)
    person_ids: Collection[int] | None = _condition("keep only items of these persons", int, many=True)
    exclude_camera: int | None = _condition(
        "the query's own camera, whose items are dropped (the re-identification protocol)", int
    )
    time_from: float | None = _condition("keep items with timestamp >= this (POSIX seconds)", float)
    time_to: float | None = _condition("keep items with timestamp <= this (POSIX seconds)", float)

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
