import numpy as np

from reid.gallery import Filters
from reid.gallery.backends.faiss.columns import FilterColumns
from reid.gallery.backends.faiss.metadata import FilterColumnsData

NAN = np.nan


def _columns():
    # ids 1..5: camera 1, 2, None, 1, 3; person 7, 7, 8, None, 9; timestamp 10, None, 30, 40, 50;
    # inserted 100, 200, 300, None (a migrated row reads its default; None here tests the rule), 500
    return FilterColumns(
        FilterColumnsData(
            ids=np.array([1, 2, 3, 4, 5]),
            person_ids=np.array([7, 7, 8, NAN, 9]),
            camera_ids=np.array([1, 2, NAN, 1, 3]),
            timestamps=np.array([10, NAN, 30, 40, 50]),
            inserted=np.array([100, 200, 300, NAN, 500]),
        )
    )


def _allowed(columns, filters, live_only=False):
    mask = columns.mask(filters, live_only=live_only)
    return None if mask is None else np.flatnonzero(mask).tolist()


def test_no_filter_needs_no_mask_unless_live_only():
    columns = _columns()
    assert _allowed(columns, None) is None
    assert _allowed(columns, Filters()) is None
    columns.remove(np.array([2]))
    assert _allowed(columns, None, live_only=True) == [1, 3, 4, 5]


def test_each_condition():
    columns = _columns()
    assert _allowed(columns, Filters(cameras_in={1, 3})) == [1, 4, 5]  # unknown camera dropped
    assert _allowed(columns, Filters(cameras_not_in={1})) == [2, 3, 5]  # unknown camera kept
    assert _allowed(columns, Filters(exclude_camera=2)) == [1, 3, 4, 5]
    assert _allowed(columns, Filters(cameras_not_in={3}, exclude_camera=2)) == [1, 3, 4]
    assert _allowed(columns, Filters(person_ids={7})) == [1, 2]
    assert _allowed(columns, Filters(time_from=30)) == [3, 4, 5]  # inclusive, unknown time dropped
    assert _allowed(columns, Filters(time_to=30)) == [1, 3]
    assert _allowed(columns, Filters(cameras_in={1}, time_from=20)) == [4]
    assert _allowed(columns, Filters(inserted_from=200)) == [2, 3, 5]  # inclusive, unknown dropped
    assert _allowed(columns, Filters(inserted_to=300)) == [1, 2, 3]


def test_deleted_ids_never_pass_and_columns_grow():
    columns = _columns()
    columns.remove(np.array([1]))
    assert _allowed(columns, Filters(person_ids={7})) == [2]
    columns.put(
        FilterColumnsData(
            ids=np.array([1000]),
            person_ids=np.array([7.0]),
            camera_ids=np.array([NAN]),
            timestamps=np.array([NAN]),
            inserted=np.array([NAN]),
        )
    )
    assert _allowed(columns, Filters(person_ids={7})) == [2, 1000]
    assert columns.live_count == 5
