"""Fixtures of the FAISS backend tests."""

import json
import sqlite3

import numpy as np
import pytest

from reid.gallery import open_gallery
from tests.gallery.helpers import make_items, unit_vectors

# The items table as the code before the item schema (reid.gallery.items) wrote it.
V1_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT UNIQUE,
    person_id INTEGER,
    camera_id INTEGER,
    {source}
    timestamp REAL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL
);
"""
V1_META = {
    "format_version": "1",
    "dim": "8",
    "fingerprint": '"m"',
    "index": "Flat",
    "train_size": "null",
    "metric": "inner_product",
    "last_seq": "1",
}


def _write_v1_database(path, vectors, *, with_source=True):
    """A gallery database as written before the item schema; ``with_source=False`` leaves out a column,
    as a gallery written before that field was declared would."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA.format(source="source TEXT," if with_source else ""))
    conn.executemany("INSERT INTO meta VALUES (?, ?)", V1_META.items())
    columns = "key, person_id, camera_id, timestamp, metadata, vector" + (", source" if with_source else "")
    for i, v in enumerate(vectors):
        values = [f"k{i}", i, i % 2, 10.0 * i, json.dumps({"i": i}), v.astype("<f4").tobytes()]
        values += [f"/crops/{i}.jpg"] if with_source else []
        conn.execute(f"INSERT INTO items ({columns}) VALUES ({','.join('?' * len(values))})", values)
    conn.commit()
    conn.close()


@pytest.fixture
def write_v1_database():
    """Writes a gallery database as the code before the item schema did (see _write_v1_database)."""
    return _write_v1_database


@pytest.fixture
def gallery_dir(tmp_path):
    return tmp_path / "gallery"


@pytest.fixture
def filled(gallery_dir):
    """A 16-d exact gallery of 120 items (see make_items), its vectors and ids."""
    vectors = unit_vectors(120, 16)
    gallery = open_gallery(gallery_dir, dim=16, fingerprint="model-a")
    ids = gallery.add(make_items(vectors))
    yield gallery, vectors, np.asarray(ids)
    gallery.close()
