import argparse
import json
import time

import numpy as np
import pytest

from reid.cli import gallery as gallery_cli
from reid.cli import main, parse
from reid.errors import ConfigError, GalleryError, NotFound
from reid.gallery import BACKENDS, GalleryItem, GallerySpec, RetentionPolicy, StoreOptions, audit
from reid.gallery.retention import DAY


def _run(*argv):
    parser = argparse.ArgumentParser(prog="reid")
    gallery_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parse(parser, ["gallery", *map(str, argv)])
    return args.func(args)


@pytest.fixture(params=BACKENDS)
def new_spec(request, tmp_path):
    """Where a new gallery goes, on each backend."""
    if request.param == "milvus":
        pytest.importorskip("pymilvus")
        return GallerySpec(str(tmp_path / "gallery.db"), backend="milvus")
    return GallerySpec(tmp_path / "gallery")


@pytest.fixture
def spec(new_spec):
    """Four 4-d items: item i points along axis i, camera i % 2, person 10 + i, key "item{i}", metadata
    {"i": i}."""
    with new_spec.open(dim=4, fingerprint="m") as gallery:
        gallery.add(
            [
                GalleryItem(
                    vector=v,
                    key=f"item{i}",
                    camera_id=i % 2,
                    person_id=10 + i,
                    timestamp=100.0 * i,
                    metadata={"i": i},
                )
                for i, v in enumerate(np.eye(4, dtype=np.float32))
            ]
        )
    return new_spec


def _words(spec):
    """The command-line words naming the gallery."""
    return [spec.location, "--backend", spec.backend]


@pytest.fixture
def gallery(spec):
    return _words(spec)


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


def _keys(spec):
    with spec.open(read_only=True) as store:
        return store.existing_keys([f"item{i}" for i in range(4)] + ["old", "recent", "new", "fresh"])


def test_delete_by_filter_erases_and_dry_run_only_counts(gallery, spec, capsys):
    assert _run("delete", *gallery, "--person-ids", "10", "11", "--dry-run") == 0
    out = 'would erase 2 item(s) matching {"person_ids": [10, 11]}; nothing was deleted'
    assert capsys.readouterr().out.strip() == out
    assert len(_keys(spec)) == 4
    assert _run("delete", *gallery, "--person-ids", "10", "11") == 0
    assert capsys.readouterr().out.strip() == 'erased 2 item(s) matching {"person_ids": [10, 11]}; 2 left'
    _run("delete", *gallery, "--key-prefix", "item", "--metadata", "i=3")
    out = 'erased 1 item(s) matching {"key_prefix": "item", "metadata": {"i": 3}}; 1 left'
    assert capsys.readouterr().out.strip() == out
    _run("delete", *gallery, "--metadata", "i=3", "--dry-run")
    assert capsys.readouterr().out.strip().startswith("would erase 0 item(s) matching")
    assert _keys(spec) == {"item2"}


def test_delete_by_id_dry_run_counts_what_would_go(gallery, spec, capsys):
    location, *backend = gallery
    assert _run("delete", location, "1", "2", "--key", "item1", "--dry-run", *backend) == 0
    assert capsys.readouterr().out.strip() == "would delete 2 item(s); nothing was deleted"
    # Ids after the flags too (argparse alone ends a subcommand's positionals at its first flag).
    assert _run("delete", location, "1", "--dry-run", *backend, "2", "3") == 0
    assert capsys.readouterr().out.strip() == "would delete 3 item(s); nothing was deleted"
    with pytest.raises(SystemExit):
        _run("delete", location, "--dry-run", *backend, "2", "x")
    with pytest.raises(NotFound, match="id 99"):  # as the deletion would refuse it
        _run("delete", location, "1", "99", "--dry-run", *backend)
    assert len(_keys(spec)) == 4


def test_delete_refuses_nothing_and_mixing_ids_with_filters(gallery):
    with pytest.raises(ConfigError, match="give gallery ids, --key KEY or filter flags"):
        _run("delete", *gallery, "--dry-run")
    location, *backend = gallery
    for by_id in (["1"], ["--key", "item1"]):
        with pytest.raises(ConfigError, match="not both"):
            _run("delete", location, *by_id, "--camera-in", "1", *backend)
    with pytest.raises(ConfigError, match="key_prefix must not be empty"):
        _run("delete", *gallery, "--key-prefix", "")


def test_search_takes_the_new_filter_flags(gallery, tmp_path, capsys):
    queries = _query_file(tmp_path, np.full(4, 0.5))
    _run("search", *gallery, "--vector-file", queries, "--key-prefix", "item", "--metadata", "i=2", "--json")
    assert [h["key"] for h in json.loads(capsys.readouterr().out)[0]] == ["item2"]
    _run("search", *gallery, "--vector-file", queries, "--inserted-to", "1000", "--json")
    assert json.loads(capsys.readouterr().out) == [[]]  # every item was stored after 1970


def test_cli_actions_are_audited_as_the_command_and_user(gallery, spec, monkeypatch, capsys):
    monkeypatch.setattr(audit, "_process_actor", audit.process_actor())  # main() names the process's actor
    monkeypatch.setenv("LOGNAME", "auditor")  # what getpass reads first
    words = list(map(str, gallery))
    assert main(["gallery", "delete", *words, "--person-ids", "10"]) == 0
    assert main(["gallery", "delete", words[0], "1", "--person-ids", "10", *words[1:]]) == 2
    assert (
        capsys.readouterr().err
        == "error: delete by ids/--key or erase by filter flags, not both in one call\n"
    )
    with spec.open(read_only=True) as store:
        lines = [json.loads(line) for line in store.audit_path.read_text().splitlines()]
    (erase,) = [line for line in lines if line["action"] == "erase"]
    assert (erase["via"], erase["user"], erase["filter"], erase["erased"]) == (
        "reid gallery delete",
        "auditor",
        {"person_ids": [10]},
        1,
    )


@pytest.fixture
def aged(new_spec):
    """Four 8-d items, their keys saying when they were stored and taken: "old" stored 40 days ago, no
    timestamp; "recent" stored 10 days ago, taken now; "new" stored now, taken in 1970; "fresh" stored now,
    no timestamp. Days apart, so no test depends on when the command runs."""
    now = time.time()
    moment = [now - 40 * DAY]  # the store's clock, moved on between adds
    taken = {"old": None, "recent": now, "new": 1000.0, "fresh": None}
    stored = {"old": now - 40 * DAY, "recent": now - 10 * DAY, "new": now, "fresh": now}
    with new_spec.open(dim=8, store=StoreOptions(clock=lambda: moment[0])) as gallery:
        for row, key in enumerate(taken):
            moment[0] = stored[key]
            gallery.add([GalleryItem(vector=np.eye(8, dtype=np.float32)[row], key=key, timestamp=taken[key])])
    return new_spec


def _retention(spec, *flags):
    return _run("retention", *_words(spec), *flags)


def test_retention_set_show_dry_run_and_off(aged, capsys):
    def said(*flags):
        assert _retention(aged, *flags) == 0
        return capsys.readouterr().out.strip()

    assert said() == "no retention policy"
    assert said("--dry-run") == "no retention policy: would erase 0 item(s); nothing was changed"
    inserted = "keep items 30 days, counted from insertion"
    assert (
        said("--days", "30", "--dry-run")
        == f"{inserted} (not stored): would erase 1 item(s); nothing was changed"
    )
    captured = "keep items 30 days, counted from capture (insertion for items without a timestamp)"
    assert said("--days", "30", "--by", "captured", "--dry-run") == (
        f"{captured} (not stored): would erase 2 item(s); nothing was changed"
    )
    assert said() == "no retention policy"
    assert len(_keys(aged)) == 4
    assert said("--days", "30") == f"{inserted} (stored): erased 1 item(s); 3 left"
    assert _keys(aged) == {"recent", "new", "fresh"}
    assert said() == inserted
    assert said("--days", "1", "--by", "captured", "--dry-run").endswith(
        "would erase 1 item(s); nothing was changed"
    )
    assert said("--off") == "no retention policy (removed)"
    assert said() == "no retention policy"
    assert _keys(aged) == {"recent", "new", "fresh"}


def test_retention_dry_run_of_the_kept_policy_erases_nothing(aged, capsys):
    with aged.open(store=StoreOptions(clock=lambda: 0.0)) as gallery:  # 1970: the policy expires nothing yet
        gallery.set_retention(RetentionPolicy(days=5))
    assert _retention(aged, "--dry-run") == 0
    out = "keep items 5 days, counted from insertion: would erase 2 item(s); nothing was changed"
    assert capsys.readouterr().out.strip() == out
    assert len(_keys(aged)) == 4


@pytest.mark.parametrize("new_spec", ["faiss"], indirect=True)  # refused before the gallery opens
def test_retention_refuses_bad_flags(aged):
    with pytest.raises(ConfigError, match="positive"):
        _retention(aged, "--days", "0")
    with pytest.raises(ConfigError, match="--by goes with --days"):
        _retention(aged, "--by", "captured")
    with pytest.raises(ConfigError, match="--off erases nothing"):
        _retention(aged, "--off", "--dry-run")
    with pytest.raises(SystemExit):
        _retention(aged, "--off", "--days", "3")
