import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from reid.errors import ConfigError, GalleryError, ModelMismatch, NotFound
from reid.gallery import FaissSearchParams, Filters, GalleryItem, open_gallery
from reid.gallery.backends.faiss.storage import SNAPSHOT_FILE, FaissStorage
from reid.gallery.storage import Identity, OpenRequest, Storage
from tests.gallery.helpers import (
    FILTER_CASES,
    brute_force,
    is_best_first,
    item_fields,
    make_items,
    passes,
    unit_vectors,
)


def _ids(hits):
    return [[h.id for h in row] for row in hits]


@pytest.mark.parametrize("n_queries", [1, 7, 25])  # numpy BLAS path below 20 queries, FAISS from 20
def test_exact_search_equals_brute_force(filled, n_queries):
    gallery, vectors, ids = filled
    queries = unit_vectors(n_queries, 16, seed=1)
    hits = gallery.search(queries, k=10)
    for row, (want_ids, want_scores) in zip(hits, brute_force(vectors, ids, queries, 10), strict=True):
        assert [h.id for h in row] == want_ids
        np.testing.assert_allclose([h.score for h in row], want_scores, rtol=0, atol=1e-5)


def test_hits_carry_metadata(filled):
    gallery, vectors, ids = filled
    (hit,) = gallery.search(vectors[5:6], k=1)[0]
    assert (hit.id, hit.key, hit.person_id, hit.camera_id) == (ids[5], "k5", 1, 2)
    assert (hit.source, hit.timestamp, dict(hit.metadata)) == ("/crops/5.jpg", 50.0, {"i": 5})
    assert hit.score == pytest.approx(1.0, abs=1e-6)


def test_k_larger_than_gallery_and_empty_gallery(gallery_dir):
    with open_gallery(gallery_dir, dim=8) as gallery:
        assert gallery.search(unit_vectors(2, 8), k=5) == [[], []]
        gallery.add(make_items(unit_vectors(3, 8)))
        assert [len(row) for row in gallery.search(unit_vectors(2, 8, seed=3), k=5)] == [3, 3]


@pytest.mark.parametrize("k", [5, 3])
def test_identical_vectors_rank_by_id_and_the_lowest_ids_make_the_cut(gallery_dir, k):
    # On AVX512 hosts OpenBLAS scores the last of five identical vectors a few ulps apart from the rest.
    vector = unit_vectors(1, 8)[0]
    with open_gallery(gallery_dir, dim=8) as gallery:
        ids = gallery.add([GalleryItem(vector=vector) for _ in range(5)])
        gallery.add(make_items(unit_vectors(20, 8, seed=4)))
        assert _ids(gallery.search(vector[None], k=k)) == [ids[:k]]


@pytest.mark.parametrize("n_queries", [4, 24])
@pytest.mark.parametrize("filters", FILTER_CASES)
def test_filters_match_brute_force_on_the_allowed_subset(filled, filters, n_queries):
    gallery, vectors, ids = filled
    items = make_items(vectors)
    keep = np.array([passes(item, filters) for item in items])
    queries = unit_vectors(n_queries, 16, seed=2)
    hits = gallery.search(queries, k=8, filters=filters)
    expected = brute_force(vectors[keep], ids[keep], queries, 8)
    assert _ids(hits) == [want for want, _ in expected]


def test_one_filter_per_query(filled):
    gallery, vectors, ids = filled
    per_query = [Filters(exclude_camera=0), Filters(exclude_camera=1), Filters(exclude_camera=0)]
    hits = gallery.search(vectors[:3], k=5, filters=per_query)
    items = make_items(vectors)
    for q, f in enumerate(per_query):
        keep = np.array([passes(item, f) for item in items])
        assert _ids(hits)[q] == brute_force(vectors[keep], ids[keep], vectors[q : q + 1], 5)[0][0]
    with pytest.raises(ConfigError, match="one per query"):
        gallery.search(vectors[:3], k=5, filters=per_query[:2])


def test_delete_and_upsert_visible_now_and_after_reopen(filled, gallery_dir):
    gallery, vectors, ids = filled
    gallery.delete([ids[0], ids[1]])
    new_vector = unit_vectors(1, 16, seed=9)[0]
    (new_id,) = gallery.upsert([GalleryItem(vector=new_vector, key="k2", person_id=99)])
    assert new_id not in ids  # a replaced item gets a fresh id

    def check(g):
        assert g.count() == 118
        assert g.lookup(["k2"]) == [new_id]
        with pytest.raises(NotFound):
            g.get([ids[0]])
        with pytest.raises(NotFound):
            g.get([ids[2]])
        assert g.search(vectors[:3], k=1)[0][0].id != ids[0]
        top = g.search(new_vector[None], k=1)[0][0]
        assert (top.id, top.person_id) == (new_id, 99)
        assert ids[1] not in _ids(g.search(vectors[1:2], k=120))[0]

    check(gallery)
    gallery.close()
    with open_gallery(gallery_dir) as reopened:
        check(reopened)


def test_add_refuses_existing_and_repeated_keys(filled):
    gallery, vectors, _ = filled
    with pytest.raises(GalleryError, match="'k3' already exists"):
        gallery.add([GalleryItem(vector=vectors[0], key="new"), GalleryItem(vector=vectors[0], key="k3")])
    with pytest.raises(GalleryError, match="more than once"):
        gallery.add([GalleryItem(vector=vectors[0], key="x"), GalleryItem(vector=vectors[1], key="x")])
    with pytest.raises(GalleryError, match="needs a key"):
        gallery.upsert([GalleryItem(vector=vectors[0])])
    assert gallery.count() == 120  # failed writes changed nothing
    with pytest.raises(NotFound):
        gallery.lookup(["new"])


def test_unknown_ids_raise_not_found_and_delete_is_atomic(filled):
    gallery, _, ids = filled
    with pytest.raises(NotFound, match="999"):
        gallery.delete([ids[0], 999])
    assert gallery.count() == 120
    assert gallery.get([ids[0]])[0].key == "k0"


def test_get_returns_stored_records(filled):
    gallery, vectors, ids = filled
    records = gallery.get([ids[4], ids[2]])
    assert [r.key for r in records] == ["k4", "k2"]
    np.testing.assert_array_equal(records[0].vector, vectors[4])


def test_mixed_models_are_refused(filled, gallery_dir):
    gallery, vectors, _ = filled
    with pytest.raises(ModelMismatch, match="model-b"):
        gallery.add([GalleryItem(vector=vectors[0])], fingerprint="model-b")
    with pytest.raises(ModelMismatch):
        gallery.search(vectors[:1], fingerprint="model-b")
    with pytest.raises(ModelMismatch, match="dimension 8"):
        gallery.add([GalleryItem(vector=unit_vectors(1, 8)[0])])
    gallery.add([GalleryItem(vector=vectors[0])], fingerprint="model-a")
    gallery.close()
    with pytest.raises(ModelMismatch, match=r"'model-a'.*'model-b'"):
        open_gallery(gallery_dir, fingerprint="model-b")
    with pytest.raises(ModelMismatch, match="16-d"):
        open_gallery(gallery_dir, dim=32)
    with pytest.raises(GalleryError, match="uses index 'Flat'"):
        open_gallery(gallery_dir, index="HNSW32")


def test_an_empty_gallery_records_its_first_fingerprint(gallery_dir):
    open_gallery(gallery_dir, dim=8).close()
    open_gallery(gallery_dir, fingerprint="m").close()
    with pytest.raises(ModelMismatch):
        open_gallery(gallery_dir, fingerprint="other")


@pytest.mark.parametrize(
    ("vector", "error", "message"),
    [
        (np.full(16, np.nan, dtype=np.float32), GalleryError, "NaN"),
        (np.full(16, 0.5, dtype=np.float32), GalleryError, "L2 norm 2"),
        (np.zeros(16, dtype=np.float32), GalleryError, "L2 norm 0"),
        (np.arange(16), GalleryError, "floating point"),
        (np.ones((2, 8), dtype=np.float32), GalleryError, "1-d"),
    ],
)
def test_bad_vectors_are_refused(filled, vector, error, message):
    gallery, _, _ = filled
    with pytest.raises(error, match=message):
        gallery.add([GalleryItem(vector=vector)])
    assert gallery.count() == 120


def test_float_drift_is_renormalised(filled):
    gallery, vectors, _ = filled
    (item_id,) = gallery.add([GalleryItem(vector=vectors[0] * 1.0005)])
    assert np.linalg.norm(gallery.get([item_id])[0].vector) == pytest.approx(1.0, abs=1e-6)


def test_bad_search_arguments(filled):
    gallery, vectors, _ = filled
    with pytest.raises(ConfigError):
        gallery.search(vectors[:1], k=0)
    with pytest.raises(GalleryError, match="2-d"):
        gallery.search(vectors[0], k=1)


def test_creating_needs_dim_and_a_valid_factory(gallery_dir):
    with pytest.raises(GalleryError, match="pass dim"):
        open_gallery(gallery_dir)
    with pytest.raises(ConfigError, match="factory"):
        open_gallery(gallery_dir, dim=8, index="NoSuchIndex")
    assert not gallery_dir.exists()


def test_one_writer_process_and_read_only_opens(filled, gallery_dir):
    gallery, vectors, _ = filled
    with pytest.raises(GalleryError, match="open in another process"):
        open_gallery(gallery_dir)
    gallery.close()
    with open_gallery(gallery_dir, read_only=True) as a, open_gallery(gallery_dir, read_only=True) as b:
        assert a.count() == b.count() == 120
        with pytest.raises(GalleryError, match="read-only"):
            a.add([GalleryItem(vector=vectors[0])])
        with pytest.raises(GalleryError, match="read-only"):
            a.delete([1])
    with pytest.raises(GalleryError, match="closed"):
        gallery.count()


def test_stats_and_snapshot_bookkeeping(filled, gallery_dir):
    gallery, _, ids = filled
    stats = gallery.stats()
    assert (stats.count, stats.dim, stats.fingerprint, stats.index) == (120, 16, "model-a", "Flat")
    details = stats.details
    assert (details["trained"], details["index_vectors"], details["device"]) == (True, 120, "cpu")
    assert details["last_seq"] == 1
    assert details["snapshot_seq"] is None
    gallery.save()
    gallery.delete([ids[0]])
    details = gallery.stats().details
    assert (details["last_seq"], details["snapshot_seq"]) == (2, 1)
    assert details["disk_bytes"] > 120 * 16 * 4
    gallery.close()
    with open_gallery(gallery_dir) as reopened:
        assert reopened.stats().details["snapshot_seq"] == 2


def test_export(filled, tmp_path):
    gallery, vectors, ids = filled
    gallery.delete([ids[0]])
    out = gallery.export(tmp_path / "out")
    exported = np.load(out / "vectors.npy")
    np.testing.assert_array_equal(exported, vectors[1:])
    lines = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(lines) == 119
    assert lines[0] == {
        "row": 0,
        "id": int(ids[1]),
        **item_fields(
            key="k1",
            person_id=0,
            camera_id=1,
            source="/crops/1.jpg",
            timestamp=10.0,
            metadata={"i": 1},
            track_id="t0",
            inserted_at=lines[0]["inserted_at"],
        ),
    }
    assert abs(lines[0]["inserted_at"] - time.time()) < 600
    summary = json.loads((out / "gallery.json").read_text())
    assert summary == {"dim": 16, "fingerprint": "model-a", "index": "Flat", "count": 119}
    with pytest.raises(GalleryError, match="already exists"):
        gallery.export(out)


def test_corrupt_snapshot_is_rebuilt_from_the_database(filled, gallery_dir):
    gallery, vectors, ids = filled
    gallery.close()
    (gallery_dir / SNAPSHOT_FILE).write_bytes(b"REIDSNAP garbage")
    with open_gallery(gallery_dir) as reopened:
        assert reopened.stats().details["index_vectors"] == 120
        assert _ids(reopened.search(vectors[:3], k=1)) == [[i] for i in ids[:3]]


def test_concurrent_readers_and_a_writer(filled):
    gallery, _, ids = filled
    extra = unit_vectors(60, 16, seed=5)
    errors = []
    stop = threading.Event()

    def reader(seed):
        queries = unit_vectors(3, 16, seed=seed)
        try:
            while not stop.is_set():
                for row in gallery.search(queries, k=5, filters=Filters(exclude_camera=seed % 3)):
                    scores = [h.score for h in row]
                    assert len(row) == 5
                    assert is_best_first(scores)
        except Exception as exc:  # collected and reported by the main thread
            errors.append(exc)

    def writer():
        try:
            for i, vector in enumerate(extra):
                (new_id,) = gallery.add([GalleryItem(vector=vector, key=f"extra{i}", camera_id=i % 3)])
                if i % 10 == 9:  # an erasure: checkpoint and snapshot rewrite while readers search
                    assert gallery.erase(Filters(key_prefix=f"extra{i}")).erased == 1
                else:
                    gallery.delete([new_id] if i % 2 else [ids[i]])
        except Exception as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(seed,)) for seed in range(4)]
    for thread in readers:
        thread.start()
    writing = threading.Thread(target=writer)
    writing.start()
    writing.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert gallery.count() == 120  # every add was matched by a delete
    assert gallery.stats().details["index_vectors"] == 120


def test_storage_matches_the_protocol(gallery_dir):
    storage: Storage = FaissStorage.open(OpenRequest(gallery_dir, dim=4))  # mypy checks it against Storage
    assert storage.identity == Identity(dim=4, fingerprint=None, index="Flat")
    storage.close()


# --- durability -------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]

# Adds random unit vectors one by one (vector i comes from default_rng(i)), printing each
# acknowledged id; snapshots the index after item 5 so reopening exercises snapshot + replay.
ADD_FOREVER = """
import sys
import numpy as np
from reid.gallery import GalleryItem, open_gallery
gallery = open_gallery(sys.argv[1], dim=16, fingerprint="m")
i = 0
while True:
    v = np.random.default_rng(i).standard_normal(16).astype(np.float32)
    (item_id,) = gallery.add([GalleryItem(vector=v / np.linalg.norm(v), key=f"c{i}")])
    print(item_id, i, flush=True)
    if i == 5:
        gallery.save()
    i += 1
"""

# For each index kind: adds, snapshots, then deletes and upserts; exits without closing (so without a
# final snapshot). argv: a directory, then index factory strings (one gallery each, one interpreter).
CHANGE_AFTER_SNAPSHOT = """
import os, sys
import numpy as np
from reid.gallery import GalleryItem, open_gallery
x = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
for index in sys.argv[2:]:
    gallery = open_gallery(os.path.join(sys.argv[1], index), dim=16, index=index, train_size=20)
    ids = gallery.add([GalleryItem(vector=v, key=f"c{i}") for i, v in enumerate(x)])
    gallery.save()
    gallery.delete(ids[:10])
    gallery.upsert([GalleryItem(vector=x[0], key="c10")])
os._exit(0)
"""
REPLAY_KINDS = ("Flat", "HNSW16", "IVF2,Flat")
EXHAUSTIVE = FaissSearchParams(nprobe=64)


def _child(code, *args, **popen):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, cwd=REPO, **popen)


def _assert_index_matches_metadata(gallery, out_dir):
    """Every stored item is in the index and found by its own vector; nothing else is."""
    assert gallery.stats().details["index_vectors"] >= gallery.count()
    exported = gallery.export(out_dir)
    vectors = np.load(exported / "vectors.npy")
    ids = [json.loads(line)["id"] for line in (exported / "items.jsonl").read_text().splitlines()]
    assert len(ids) == gallery.count()
    assert _ids(gallery.search(vectors, k=1, params=EXHAUSTIVE)) == [[i] for i in ids]
    assert sorted(_ids(gallery.search(vectors[:1], k=len(ids) + 5, params=EXHAUSTIVE))[0]) == sorted(ids)


def test_acknowledged_adds_survive_sigkill(gallery_dir, tmp_path):
    child = _child(ADD_FOREVER, gallery_dir, stdout=subprocess.PIPE, text=True)
    acknowledged: dict[int, int] = {}
    try:
        assert child.stdout is not None
        while len(acknowledged) < 40:
            line = child.stdout.readline()
            assert line, "the child died before acknowledging 40 adds"
            item_id, i = map(int, line.split())
            acknowledged[item_id] = i
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with open_gallery(gallery_dir, fingerprint="m") as gallery:
        records = gallery.get(sorted(acknowledged))
        for record in records:
            v = np.random.default_rng(acknowledged[record.id]).standard_normal(16).astype(np.float32)
            np.testing.assert_array_equal(record.vector, v / np.linalg.norm(v))
        _assert_index_matches_metadata(gallery, tmp_path / "check")


def test_changes_after_the_last_snapshot_are_replayed(tmp_path):
    assert _child(CHANGE_AFTER_SNAPSHOT, tmp_path, *REPLAY_KINDS).wait(timeout=60) == 0
    for index in REPLAY_KINDS:
        with open_gallery(tmp_path / index) as gallery:
            assert gallery.count() == 30
            assert gallery.stats().details["snapshot_seq"] is None  # the snapshot lagged behind the database
            with pytest.raises(NotFound):
                gallery.lookup(["c0"])
            _assert_index_matches_metadata(gallery, tmp_path / "check1" / index)
        with open_gallery(tmp_path / index) as gallery:  # closing wrote a current snapshot
            details = gallery.stats().details
            assert details["snapshot_seq"] == details["last_seq"]
            _assert_index_matches_metadata(gallery, tmp_path / "check2" / index)


def test_existing_keys_returns_the_held_subset(tmp_path) -> None:
    from reid.gallery import GalleryItem, open_gallery

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with open_gallery(tmp_path / "g", dim=8, fingerprint="m-1") as gallery:
        gallery.add([GalleryItem(vector=v, key=f"k{i}") for i, v in enumerate(vectors)])
        assert gallery.existing_keys(["k0", "nope", "k2"]) == {"k0", "k2"}
        assert gallery.existing_keys([]) == set()


def test_a_gallery_written_before_the_item_schema_opens_and_migrates(gallery_dir, write_v1_database):
    vectors = unit_vectors(6, 8)
    gallery_dir.mkdir()
    write_v1_database(gallery_dir / "gallery.sqlite", vectors, with_source=False)
    with open_gallery(gallery_dir, dim=8, fingerprint="m") as gallery:  # no snapshot: rebuilt
        (hit,) = gallery.search(vectors[4:5], k=1)[0]
        assert (hit.id, hit.key, hit.camera_id, hit.source, dict(hit.metadata)) == (
            5,
            "k4",
            0,
            None,
            {"i": 4},
        )
        (new_id,) = gallery.upsert([GalleryItem(vector=vectors[0], key="k0", source="/crops/0.jpg")])
        assert gallery.get([new_id])[0].source == "/crops/0.jpg"
    with open_gallery(gallery_dir, read_only=True) as gallery:
        assert gallery.count() == 6


# --- erasure leaves no bytes behind -------------------------------------------------------------------


def _gallery_bytes(path):
    return b"".join(f.read_bytes() for f in sorted(path.iterdir()) if f.is_file())


def _pieces(vector, size=256):
    """A vector's float32 bytes in pieces: SQLite splits a large one over a page and overflow pages."""
    data = vector.astype("<f4").tobytes()
    return [data[start : start + size] for start in range(0, len(data), size)]


def _found(vector, raw):
    """How many of the vector's pieces ``raw`` holds (the ones straddling a page break never match)."""
    return sum(piece in raw for piece in _pieces(vector))


@pytest.mark.parametrize(
    ("factory", "train_size"),
    [("Flat", None), ("HNSW8", None), ("IVF2,Flat", 16)],  # removes in place / keeps deleted / trained lists
)
def test_erased_vectors_are_gone_from_the_files_after_a_restart(tmp_path, factory, train_size):
    # 1024-d float32 vectors are 4 KiB: each spills into SQLite overflow pages, as real 2048-d ones do.
    vectors = unit_vectors(40, 1024, seed=7)
    doomed = [8, 9, 10, 11]  # person 2 (see make_items)
    path = tmp_path / "g"
    with open_gallery(path, dim=1024, index=factory, train_size=train_size) as gallery:
        gallery.add(make_items(vectors))
    # Closed: the items are in the database file itself (checkpointed) and in the snapshot.
    database, snapshot = (path / "gallery.sqlite").read_bytes(), (path / SNAPSHOT_FILE).read_bytes()
    for i in doomed:  # the scan can see them
        assert _found(vectors[i], database) >= len(_pieces(vectors[i])) - 2
        assert vectors[i].astype("<f4").tobytes() in snapshot
    with open_gallery(path) as gallery:
        assert gallery.erase(Filters(person_ids={2})).erased == 4
        raw = _gallery_bytes(path)  # gone when erase returns, not only once the gallery closes
        assert [_found(vectors[i], raw) for i in doomed] == [0] * len(doomed)
    with open_gallery(path) as gallery:  # a restart: what is on disk is all there is
        assert gallery.count() == 36
        assert not {hit.key for hit in gallery.search(vectors[doomed], k=5)[0]} & {"k8", "k9", "k10", "k11"}
    raw = _gallery_bytes(path)
    assert [_found(vectors[i], raw) for i in doomed] == [0] * len(doomed)
    assert _found(vectors[0], (path / "gallery.sqlite").read_bytes()) >= len(_pieces(vectors[0])) - 2
