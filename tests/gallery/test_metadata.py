import sqlite3

import numpy as np
import pytest

from reid.errors import GalleryError, NotFound
from reid.gallery import GalleryItem
from reid.gallery.metadata import GalleryMeta, MetadataDB
from tests.gallery.helpers import make_items, unit_vectors


@pytest.fixture
def db(tmp_path):
    database = MetadataDB(tmp_path / "g.sqlite", create=GalleryMeta(dim=8, fingerprint="m", index="Flat"))
    yield database
    database.close()


def test_durability_pragmas(db):
    conn = sqlite3.connect(db.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_meta_round_trip_and_version_check(db):
    assert db.meta == GalleryMeta(dim=8, fingerprint="m", index="Flat", train_size=None)
    db._conn.execute("UPDATE meta SET value = '99' WHERE name = 'format_version'")
    with pytest.raises(GalleryError, match="unsupported gallery format 99"):
        MetadataDB(db.path)


def test_ids_are_never_reused_and_seq_counts_writes(db):
    vectors = unit_vectors(3, 8)
    ids, removed = db.insert(make_items(vectors), vectors, replace_keys=False)
    assert (ids, removed, db.last_seq) == ([1, 2, 3], [], 1)
    db.delete([3])
    ids, _ = db.insert(make_items(vectors[:1], prefix="again"), vectors[:1], replace_keys=False)
    assert ids == [4]  # the deleted highest id 3 is not handed out again
    assert db.last_seq == 3


def test_replace_keys_deletes_the_old_rows(db):
    vectors = unit_vectors(2, 8)
    db.insert(make_items(vectors), vectors, replace_keys=False)
    ids, removed = db.insert([GalleryItem(vector=vectors[1], key="k0")], vectors[1:], replace_keys=True)
    assert (ids, removed) == ([3], [1])
    assert db.lookup(["k0", "k1"]) == [3, 2]


def test_rows_vectors_and_records(db):
    vectors = unit_vectors(4, 8)
    db.insert(make_items(vectors), vectors, replace_keys=False)
    rows = db.rows([2, 4, 77])
    assert sorted(rows) == [2, 4]
    assert (rows[2].key, rows[2].metadata) == ("k1", {"i": 1})
    np.testing.assert_array_equal(db.vectors([4, 1]), vectors[[3, 0]])
    with pytest.raises(NotFound, match="77"):
        db.vectors([1, 77])
    batches = list(db.iter_vectors(ids=np.array([3, 1])))
    assert [b[0].tolist() for b in batches] == [[1, 3]]
    columns = db.filter_columns()
    assert columns.ids.tolist() == [1, 2, 3, 4]
    assert columns.camera_ids.tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (GalleryItem(vector=np.zeros(8), key="a", metadata={"x": object()}), "JSON"),
        (GalleryItem(vector=np.zeros(8), key="a", person_id="seven"), "person_id"),  # type: ignore[arg-type]
        (GalleryItem(vector=np.zeros(8), key="a", timestamp=float("nan")), "finite"),
        (GalleryItem(vector=np.zeros(8), key=5), "string"),  # type: ignore[arg-type]
    ],
)
def test_bad_item_fields(db, item, message):
    with pytest.raises(GalleryError, match=message):
        db.insert([item], np.zeros((1, 8), dtype=np.float32), replace_keys=False)
    assert (db.count(), db.last_seq) == (0, 0)


def test_read_only_refuses_writes(db):
    reader = MetadataDB(db.path, read_only=True)
    with pytest.raises(GalleryError, match="read-only"):
        reader.delete([1])
    reader.close()
