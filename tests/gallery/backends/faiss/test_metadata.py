import sqlite3
import time

import numpy as np
import pytest

from reid.errors import GalleryError, NotFound
from reid.gallery.backends.faiss.metadata import GalleryMeta, MetadataDB
from reid.gallery.items import item_values
from tests.gallery.helpers import item_fields, make_items, unit_vectors


def _rows(vectors, prefix="k"):
    return [item_values(item, inserted_at=1000.0) for item in make_items(vectors, prefix=prefix)]


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
    ids = db.insert(_rows(vectors), vectors, [])
    assert (ids, db.last_seq) == ([1, 2, 3], 1)
    db.delete([3])
    ids = db.insert(_rows(vectors[:1], prefix="again"), vectors[:1], [])
    assert ids == [4]  # the deleted highest id 3 is not handed out again
    assert db.last_seq == 3


def test_replaced_rows_go_in_the_same_transaction(db):
    vectors = unit_vectors(2, 8)
    db.insert(_rows(vectors), vectors, [])
    assert db.insert(_rows(vectors[1:], prefix="x"), vectors[1:], [1]) == [3]
    assert db.ids_by_key(["k0", "k1", "x0"]) == {"k1": 2, "x0": 3}
    assert db.last_seq == 2
    with pytest.raises(GalleryError, match="UNIQUE"):  # the last guard behind the core's key check
        db.insert(_rows(vectors[:1], prefix="x"), vectors[:1], [])
    assert db.all_ids().tolist() == [2, 3]


def test_rows_vectors_and_filter_columns(db):
    vectors = unit_vectors(4, 8)
    db.insert(_rows(vectors), vectors, [])
    rows = db.rows([2, 4, 77])
    assert sorted(rows) == [2, 4]
    assert rows[2] == item_values(make_items(vectors)[1], inserted_at=1000.0)
    np.testing.assert_array_equal(db.vectors([4, 1]), vectors[[3, 0]])
    with pytest.raises(NotFound, match="77"):
        db.vectors([1, 77])
    batches = list(db.iter_vectors(ids=np.array([3, 1])))
    assert [b[0].tolist() for b in batches] == [[1, 3]]
    columns = db.filter_columns()
    assert columns.ids.tolist() == [1, 2, 3, 4]
    assert columns.camera_ids.tolist() == [0, 1, 2, 0]


def test_read_only_refuses_writes(db):
    reader = MetadataDB(db.path, read_only=True)
    with pytest.raises(GalleryError, match="read-only"):
        reader.delete([1])
    reader.close()


def test_a_database_written_before_the_item_schema_reads_as_is(tmp_path, write_v1_database):
    vectors = unit_vectors(3, 8)
    write_v1_database(tmp_path / "g.sqlite", vectors)
    before = time.time()
    db = MetadataDB(tmp_path / "g.sqlite")
    row = db.rows([2])[2]
    assert row == item_fields(
        key="k1",
        person_id=1,
        camera_id=1,
        source="/crops/1.jpg",
        timestamp=10.0,
        metadata={"i": 1},
        inserted_at=row["inserted_at"],
    )
    # Items stored before insertion times were recorded read the time of the migration, not unknown:
    # retention counts from the upgrade.
    assert before <= row["inserted_at"] <= time.time()
    assert db.rows([1])[1]["inserted_at"] == row["inserted_at"]
    assert db.insert(_rows(vectors[:1], prefix="new"), vectors[:1], [1]) == [4]
    db.close()


def test_a_field_the_database_predates_is_added_on_a_writable_open(tmp_path, write_v1_database):
    vectors = unit_vectors(2, 8)
    write_v1_database(tmp_path / "g.sqlite", vectors, with_source=False)
    with pytest.raises(GalleryError, match=r"predates the item fields \['source'"):
        MetadataDB(tmp_path / "g.sqlite", read_only=True)
    db = MetadataDB(tmp_path / "g.sqlite")
    assert db.rows([1])[1]["source"] is None  # old items read the new field as unknown
    db.insert(_rows(vectors[:1], prefix="new"), vectors[:1], [])
    assert db.rows([3])[3]["source"] == "/crops/0.jpg"
    db.close()
    MetadataDB(tmp_path / "g.sqlite", read_only=True).close()  # migrated: nothing left to add
