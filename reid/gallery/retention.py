"""Retention: how long a gallery keeps items, counted from when they were stored or taken.

A :class:`RetentionPolicy` is kept with the gallery (``reid gallery retention``), so every process that
opens it for writing applies it; the service may add its own (``REID_RETENTION_DAYS``). Where both
apply, the shorter limit wins in effect. :meth:`reid.gallery.GalleryStore.sweep` erases what a policy
has expired, with the guarantees of an erasure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from reid.errors import ConfigError
from reid.gallery.filters import Filters
from reid.gallery.items import TIMESTAMP_FIELD

if TYPE_CHECKING:  # the storage interface names RetentionPolicy in turn
    from reid.gallery.storage import Storage

DAY = 86_400.0
MAX_DAYS = 1_000_000  # about 2,700 years: beyond it the cutoff and a Milvus TTL stop being numbers
RetentionClock = Literal["inserted", "captured"]
RETENTION_CLOCKS: tuple[RetentionClock, ...] = get_args(RetentionClock)


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep items ``days`` days. ``by="inserted"`` counts from when the gallery stored an item;
    ``by="captured"`` from its ``timestamp`` (when the crop was taken), falling back to the storing time
    for items without one, so no item is kept forever for lack of a timestamp."""

    days: float
    by: RetentionClock = "inserted"

    def __post_init__(self) -> None:
        if not (isinstance(self.days, int | float) and 0 < self.days <= MAX_DAYS):
            raise ConfigError(f"retention days must be a positive number up to {MAX_DAYS}, got {self.days!r}")
        if self.by not in RETENTION_CLOCKS:
            raise ConfigError(f"retention counts by one of {list(RETENTION_CLOCKS)}, got {self.by!r}")

    @property
    def seconds(self) -> float:
        return self.days * DAY

    def cutoff(self, now: float) -> float:
        """Items stored (or taken) at or before this POSIX time have expired."""
        return now - self.seconds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RetentionPolicy:
        try:
            values = json.loads(text)
            return cls(days=values["days"], by=values["by"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"unreadable retention policy {text!r}: {exc}") from exc


def expired_ids(storage: Storage, policy: RetentionPolicy, now: float) -> np.ndarray:
    """The ids ``policy`` has expired at ``now``, ascending (caller holds the storage's lock)."""
    cutoff = policy.cutoff(now)
    stored_before = storage.matching(Filters(inserted_to=cutoff))
    if policy.by == "inserted":
        return stored_before
    rows = storage.rows(stored_before.tolist())
    undated = [i for i in stored_before.tolist() if rows[i][TIMESTAMP_FIELD] is None]
    taken_before = storage.matching(Filters(time_to=cutoff))
    return np.union1d(taken_before, np.asarray(undated, dtype=np.int64))
