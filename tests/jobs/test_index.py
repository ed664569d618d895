import json
import shutil

import numpy as np
import pytest

from reid.datasets import ImageRecord, read_image_list, scan_folder
from reid.errors import ConfigError, ModelMismatch
from reid.gallery import open_gallery
from reid.jobs import FAILURE_LOG, index_source
from reid.jobs.shards import ShardWriter
from tests.helpers import calibrated_extractor


@pytest.fixture(scope="module")
def extractor():
    ex = calibrated_extractor()
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def reference(extractor, market_dir):
    """Every image's embedding, computed directly: key -> vector."""
    records = scan_folder(market_dir)
    vectors = extractor.embed([r.path for r in records])
    return dict(zip([r.key for r in records], vectors, strict=True))


def _stored(gallery_dir):
    """key -> (id, record) of everything in the gallery."""
    with open_gallery(gallery_dir, read_only=True) as gallery:
        export = gallery_dir.parent / f"{gallery_dir.name}-export"
        shutil.rmtree(export, ignore_errors=True)
        gallery.export(export)
    rows = [json.loads(line) for line in (export / "items.jsonl").read_text().splitlines()]
    vectors = np.load(export / "vectors.npy")
    assert len({row["key"] for row in rows}) == len(rows)  # one entry per key
    return {row["key"]: (row, vectors[row["row"]]) for row in rows}


def _run(source, gallery_dir, extractor, **kwargs):
    return index_source(source, gallery_dir, extractor, chunk_size=4, progress=False, **kwargs)


def test_indexes_every_image_with_labels_and_source(extractor, market_dir, reference, tmp_path):
    summary = _run(market_dir, tmp_path / "g", extractor, workers=2)
    assert (summary.total, summary.indexed, summary.skipped, summary.failed) == (10, 10, 0, 0)
    assert summary.gallery_count == 10
    assert summary.failure_log is None
    assert summary.images_per_s > 0
    stored = _stored(tmp_path / "g")
    assert set(stored) == set(reference)
    for key, (row, vector) in stored.items():
        np.testing.assert_allclose(vector, reference[key], atol=1e-5)
        assert row["source"] == str(market_dir / key)
    query_row = stored["query/0001_c2s1_000003_01.jpg"][0]
    assert (query_row["person_id"], query_row["camera_id"]) == (1, 2)
    junk = [row for row, _ in stored.values() if row["key"].startswith("bounding_box_test/-1_")]
    assert [row["person_id"] for row in junk] == [-1]  # junk is stored, labelled as such


def test_rerun_skips_what_is_indexed_and_completes_a_partial_gallery(extractor, market_dir, tmp_path):
    records = scan_folder(market_dir)
    first = _run(records[:5], tmp_path / "g", extractor)
    assert (first.indexed, first.skipped) == (5, 0)
    ids_before = {key: row["id"] for key, (row, _) in _stored(tmp_path / "g").items()}

    second = _run(market_dir, tmp_path / "g", extractor)
    assert (second.indexed, second.skipped, second.gallery_count) == (5, 5, 10)
    third = _run(market_dir, tmp_path / "g", extractor)
    assert (third.indexed, third.skipped, third.gallery_count) == (0, 10, 10)
    stored = _stored(tmp_path / "g")
    assert {key: stored[key][0]["id"] for key in ids_before} == ids_before  # not rewritten


def test_no_resume_replaces_every_item(extractor, market_dir, reference, tmp_path):
    _run(market_dir, tmp_path / "g", extractor)
    ids_before = {row["id"] for row, _ in _stored(tmp_path / "g").values()}
    summary = _run(market_dir, tmp_path / "g", extractor, resume=False)
    assert (summary.indexed, summary.skipped, summary.gallery_count) == (10, 0, 10)
    stored = _stored(tmp_path / "g")
    assert ids_before.isdisjoint(row["id"] for row, _ in stored.values())
    for key, (_, vector) in stored.items():
        np.testing.assert_allclose(vector, reference[key], atol=1e-5)


def test_bad_files_are_logged_and_never_stop_the_job(extractor, market_dir, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(market_dir / "query", source)
    (source / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (source / "empty.png").write_bytes(b"")
    (source / "scan.jpg").write_bytes(b"II*\x00" + bytes(64))  # a TIFF under a .jpg name
    summary = _run(source, tmp_path / "g", extractor)
    assert (summary.indexed, summary.failed, summary.gallery_count) == (4, 3, 4)
    assert summary.failure_log == tmp_path / "g" / FAILURE_LOG
    lines = sorted(summary.failure_log.read_text().splitlines())
    assert [line.split("\t")[0] for line in lines] == [
        str(source / n) for n in ("corrupt.jpg", "empty.png", "scan.jpg")
    ]
    assert lines[1].split("\t")[1] == "invalid_image: empty file"
    assert lines[2].split("\t")[1].startswith("unsupported_image: TIFF is not accepted")

    again = _run(source, tmp_path / "g", extractor)  # failures are retried; the log is rewritten
    assert (again.indexed, again.skipped, again.failed) == (0, 4, 3)
    assert len(again.failure_log.read_text().splitlines()) == 3


def test_manifest_fields_and_metadata_are_stored(extractor, market_dir, tmp_path):
    manifest = tmp_path / "m.jsonl"
    query = sorted((market_dir / "query").iterdir())
    lines = [
        {"path": str(query[0]), "key": "a", "person": 7, "camera": 3, "timestamp": "2024-01-02T03:04:05Z"},
        {"path": str(query[1]), "key": "b", "metadata": {"site": "north", "zone": 2}},
    ]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert _run(manifest, tmp_path / "g", extractor).indexed == 2
    stored = _stored(tmp_path / "g")
    a, b = stored["a"][0], stored["b"][0]
    assert (a["person_id"], a["camera_id"], a["timestamp"]) == (7, 3, 1704164645.0)
    assert (b["person_id"], b["metadata"]) == (None, {"site": "north", "zone": 2})


def test_shards_hold_each_key_once_even_after_a_kill(extractor, market_dir, reference, tmp_path):
    records = scan_folder(market_dir)
    shards = tmp_path / "shards"
    _run(records[:4], tmp_path / "g", extractor, shard_dir=shards)
    # A kill between writing a shard and committing its chunk leaves a shard the gallery lacks.
    ShardWriter(shards).write(records[4:6], np.stack([reference[r.key] for r in records[4:6]]))
    assert len(list(shards.glob("*.npy"))) == 2

    summary = _run(market_dir, tmp_path / "g", extractor, shard_dir=shards)
    assert (summary.indexed, summary.skipped) == (6, 4)
    names = sorted(p.name for p in shards.iterdir())
    assert names == [f"embeddings-0000{i}.{ext}" for i in range(3) for ext in ("csv", "npy")]
    keys: list[str] = []
    for number in range(3):
        shard_records = read_image_list(shards / f"embeddings-0000{number}.csv")  # a valid manifest
        vectors = np.load(shards / f"embeddings-0000{number}.npy")
        assert vectors.shape == (len(shard_records), extractor.dim)
        for record, vector in zip(shard_records, vectors, strict=True):
            np.testing.assert_allclose(vector, reference[record.key], atol=1e-5)
            assert record.path == market_dir / record.key
        keys += [r.key for r in shard_records]
    assert sorted(keys) == sorted(reference)


def test_refuses_a_gallery_of_another_model(extractor, market_dir, tmp_path):
    open_gallery(tmp_path / "g", dim=extractor.dim, fingerprint="resnet18-other").close()
    with pytest.raises(ModelMismatch, match="resnet18-other"):
        _run(market_dir, tmp_path / "g", extractor)


def test_refuses_duplicate_keys(extractor, market_dir, tmp_path):
    path = next((market_dir / "query").iterdir())
    twice = [ImageRecord(path=path, key="same"), ImageRecord(path=path, key="same")]
    with pytest.raises(ConfigError, match="twice"):
        _run(twice, tmp_path / "g", extractor)


def test_job_items_carry_every_item_field_of_their_records(tmp_path):
    from reid.gallery.items import INPUT_FIELDS
    from reid.jobs.index import _items
    from reid.jobs.pipeline import ChunkResult

    record = ImageRecord(
        tmp_path / "a.jpg", "a.jpg", person_id=1, camera_id=2, timestamp=3.0, metadata={"m": 1}
    )
    (item,) = _items(ChunkResult(records=(record,), vectors=np.eye(1, 4, dtype=np.float32), failures=()))
    names = [spec.name for spec in INPUT_FIELDS]  # the gallery stamps the managed ones itself
    carried = {name: getattr(record, name) for name in names if hasattr(record, name)}
    assert item.field_values() == {**dict.fromkeys(names), **carried, "source": str(record.path)}
