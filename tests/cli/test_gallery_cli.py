import argparse
import json

import numpy as np
import pytest

from reid.cli import gallery as gallery_cli
from reid.errors import ConfigError, GalleryError, NotFound
from reid.gallery import BACKENDS, GalleryItem, GallerySpec


def _run(*argv):
    parser = argparse.ArgumentParser(prog="reid")
    gallery_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gallery", *map(str, argv)])
    return args.func(args)


@pytest.fixture(params=BACKENDS)
def spec(request, tmp_path):
    """Four 4-d items: item i points along axis i, camera i % 2, person 10 + i, key "item{i}"."""
    if request.param == "milvus":
        pytest.importorskip("pymilvus")
        spec = GallerySpec(str(tmp_path / "gallery.db"), backend="milvus")
    else:
        spec = GallerySpec(tmp_path / "gallery")
    with spec.open(dim=4, fingerprint="m") as gallery:
        gallery.add(
            [
                GalleryItem(vector=v, key=f"item{i}", camera_id=i % 2, person_id=10 + i, timestamp=100.0 * i)
                for i, v in enumerate(np.eye(4, dtype=np.float32))
            ]
        )
    return spec


@pytest.fixture
def gallery(spec):
    """The command-line words naming the gallery."""
    return [spec.location, "--backend", spec.backend]


def _query_file(tmp_path, vectors):
    path = tmp_path / "q.npy"
    np.save(path, np.asarray(vectors, dtype=np.float32))
    return path


def test_stats(gallery, spec, capsys):
    assert _run("stats", *gallery, "--json") == 0
    stats = json.loads(capsys.readouterr().out)
    index = "Flat" if spec.backend == "faiss" else "FLAT"
    assert (stats["count"], stats["dim"], stats["fingerprint"], stats["index"]) == (4, 4, "m", index)
    assert stats["backend"] == spec.backend
    assert _run("stats", *gallery) == 0
    lines = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert lines["fingerprint"] == "m"
    assert set(stats["details"]) <= set(lines)  # the backend's section, flattened


def test_search_json_with_filters(gallery, tmp_path, capsys):
    query = np.array([0.8, 0.6, 0.0, 0.0])
    queries = _query_file(tmp_path, query)  # a single (D,) vector is one query
    assert _run("search", *gallery, "--vector-file", queries, "-k", "3", "--json") == 0
    (hits,) = json.loads(capsys.readouterr().out)
    assert [h["key"] for h in hits] == ["item0", "item1", "item2"]
    assert [round(h["score"], 4) for h in hits] == [0.8, 0.6, 0.0]
    _run("search", *gallery, "--vector-file", queries, "-k", "3", "--exclude-camera", "0", "--json")
    assert [h["key"] for h in json.loads(capsys.readouterr().out)[0]] == ["item1", "item3"]
    _run(
        "search", *gallery, "--vector-file", queries, "--person-ids", "12", "13", "--time-to", "250", "--json"
    )
    assert [h["key"] for h in json.loads(capsys.readouterr().out)[0]] == ["item2"]
    _run("search", *gallery, "--vector-file", queries, "--cameras-in", "1", "--cameras-not-in", "0", "--json")
    assert [h["key"] for h in json.loads(capsys.readouterr().out)[0]] == ["item1", "item3"]


def test_search_accepts_the_old_filter_flags(gallery, tmp_path, capsys):
    queries = _query_file(tmp_path, [0.8, 0.6, 0.0, 0.0])
    _run("search", *gallery, "--vector-file", queries, "--camera-in", "1", "--camera-not-in", "3", "--json")
    assert [h["key"] for h in json.loads(capsys.readouterr().out)[0]] == ["item1", "item3"]
    _run("search", *gallery, "--vector-file", queries, "--person", "12", "--json")
    assert [h["key"] for h in json.loads(capsys.readouterr().out)[0]] == ["item2"]


def test_search_table(gallery, tmp_path, capsys):
    queries = _query_file(tmp_path, np.eye(4)[[3, 1]])
    assert _run("search", *gallery, "--vector-file", queries, "-k", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "query 0"
    assert lines[3] == "query 1"
    assert lines[2].split() == ["1", "4", "1.0000", "13", "1", "item3"]
    assert lines[5].split() == ["1", "2", "1.0000", "11", "1", "item1"]


def test_search_refuses_bad_queries(gallery, tmp_path):
    with pytest.raises(GalleryError, match="L2 norm"):
        _run("search", *gallery, "--vector-file", _query_file(tmp_path, [[1.0, 1.0, 0.0, 0.0]]))
    with pytest.raises(ConfigError, match="not a directory"):
        _run("search", tmp_path / "missing", "--vector-file", _query_file(tmp_path, np.eye(4)[:1]))


def test_faiss_tuning_flags_are_refused_for_milvus(tmp_path):
    pytest.importorskip("pymilvus")
    location = str(tmp_path / "m.db")
    GallerySpec(location, backend="milvus").open(dim=4).close()
    with pytest.raises(ConfigError, match="milvus backend does not take FaissSearchParams"):
        _run(
            "search",
            location,
            "--backend",
            "milvus",
            "--vector-file",
            _query_file(tmp_path, np.eye(4)[:1]),
            "--nprobe",
            "4",
        )


def test_delete_by_id_and_key(gallery, spec, capsys):
    location, *backend = gallery
    assert _run("delete", location, "1", "--key", "item2", *backend) == 0
    assert capsys.readouterr().out.strip() == "deleted 2 item(s); 2 left"
    with spec.open(read_only=True) as store:
        assert store.lookup(["item1", "item3"]) == [2, 4]
    with pytest.raises(NotFound):
        _run("delete", *gallery, "--key", "item0")
    with pytest.raises(ConfigError, match="give gallery ids"):
        _run("delete", *gallery)


def test_export(gallery, tmp_path, capsys):
    out = tmp_path / "export"
    assert _run("export", *gallery, out) == 0
    assert capsys.readouterr().out.strip() == f"exported 4 item(s) to {out}"
    np.testing.assert_array_equal(np.load(out / "vectors.npy"), np.eye(4, dtype=np.float32))
    assert len((out / "items.jsonl").read_text().splitlines()) == 4
