import faiss
import numpy as np
import pytest

from reid.errors import GalleryError
from reid.gallery.backends.faiss.snapshot import read_header, read_snapshot, write_snapshot
from tests.gallery.helpers import unit_vectors


def _index():
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    index.add_with_ids(unit_vectors(20, 8), np.arange(100, 120))
    return index


def test_round_trip_keeps_header_and_index(tmp_path):
    path = tmp_path / "index.snapshot"
    size = write_snapshot(path, _index(), {"seq": 7, "factory": "Flat"})
    assert size == path.stat().st_size
    assert read_header(path) == {"seq": 7, "factory": "Flat"}
    header, index = read_snapshot(path)
    assert header["seq"] == 7
    _, ids = index.search(unit_vectors(20, 8), 1)
    assert ids[:, 0].tolist() == list(range(100, 120))
    assert [p.name for p in tmp_path.iterdir()] == ["index.snapshot"]  # no temporary file left


def test_rewrite_replaces_the_previous_snapshot(tmp_path):
    path = tmp_path / "index.snapshot"
    write_snapshot(path, _index(), {"seq": 1})
    write_snapshot(path, faiss.IndexIDMap2(faiss.IndexFlatIP(8)), {"seq": 2})
    header, index = read_snapshot(path)
    assert (header["seq"], index.ntotal) == (2, 0)


@pytest.mark.parametrize("cut", [0, 4, 12, 20, -10])
def test_damaged_files_raise_gallery_error(tmp_path, cut):
    path = tmp_path / "index.snapshot"
    write_snapshot(path, _index(), {"seq": 1})
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(GalleryError):
        read_snapshot(path)
