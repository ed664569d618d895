"""In-memory columns for search-time filters.

Ids are dense (SQLite ``AUTOINCREMENT`` from 1, never reused), so every column is an array indexed by
id: a filter becomes a boolean mask over ids in a few vectorised numpy operations, with no SQL per
query. The mask doubles as a FAISS ``IDSelectorBitmap``. Memory: 33 bytes per id ever allocated.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from reid.gallery.backends.faiss.metadata import FilterColumnsData
from reid.gallery.filters import Filters
from reid.gallery.items import INSERTED_FIELD, TIMESTAMP_FIELD


def _isin(column: np.ndarray, values: Collection[int]) -> np.ndarray:
    return np.isin(column, np.fromiter(values, dtype=np.float64, count=len(values)))


class FilterColumns:
    """Person, camera, capture and insertion time per id (NaN when unknown) plus a live flag.

    Mutated only under the store's write lock; :meth:`mask` runs under its read lock.
    """

    def __init__(self, data: FilterColumnsData) -> None:
        size = int(data.ids.max()) + 1 if len(data.ids) else 1
        self._live = np.zeros(size, dtype=bool)
        self._person = np.full(size, np.nan)
        self._camera = np.full(size, np.nan)
        self._time = np.full(size, np.nan)
        self._inserted = np.full(size, np.nan)
        self.put(data)

    @property
    def live_count(self) -> int:
        return self._count

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * len(self._live))
        extra = size - len(self._live)
        self._live = np.concatenate([self._live, np.zeros(extra, dtype=bool)])
        self._person, self._camera, self._time, self._inserted = (
            np.concatenate([column, np.full(extra, np.nan)])
            for column in (self._person, self._camera, self._time, self._inserted)
        )

    def put(self, data: FilterColumnsData) -> None:
        if len(data.ids) and data.ids.max() >= len(self._live):
            self._grow(int(data.ids.max()) + 1)
        self._live[data.ids] = True
        self._person[data.ids] = data.person_ids
        self._camera[data.ids] = data.camera_ids
        self._time[data.ids] = data.timestamps
        self._inserted[data.ids] = data.inserted
        self._count = int(self._live.sum())

    def remove(self, ids: np.ndarray) -> None:
        self._live[ids] = False
        self._count = int(self._live.sum())

    def mask(self, filters: Filters | None, *, live_only: bool) -> np.ndarray | None:
        """Allowed ids as a boolean array indexed by id, or ``None`` when everything is allowed, for
        every condition but ``key_prefix`` and ``metadata`` (the database answers those).

        ``live_only`` forces a mask even without filters (an index that keeps deleted vectors).
        """
        if (filters is None or filters.is_empty) and not live_only:
            return None
        allowed = self._live.copy()
        if filters is None:
            return allowed
        if filters.cameras_in is not None:
            allowed &= _isin(self._camera, filters.cameras_in)
        if filters.excluded_cameras:
            allowed &= ~_isin(self._camera, filters.excluded_cameras)  # NaN is in no set: kept
        if filters.person_ids is not None:
            allowed &= _isin(self._person, filters.person_ids)
        times = {TIMESTAMP_FIELD: self._time, INSERTED_FIELD: self._inserted}
        for name, start, end in filters.time_bounds():  # NaN compares False: unknown times are dropped
            if start is not None:
                allowed &= times[name] >= start
            if end is not None:
                allowed &= times[name] <= end
        return allowed
