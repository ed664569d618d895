"""`reid index` and `reid search`, end to end with a small checkpoint, and resuming after SIGKILL."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import reid.cli
import reid.cli.index
from reid.datasets import make_synthetic_market, scan_folder
from reid.engine import EngineOptions
from reid.evaluation import visualize
from reid.gallery import GallerySpec, open_gallery
from reid.jobs import IndexSummary
from tests.gallery.helpers import is_best_first
from tests.helpers import calibrated_extractor

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def weights(tiny_checkpoint):
    """The calibrated tiny model's checkpoint, written once per test run (tests/conftest.py)."""
    return tiny_checkpoint


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setattr(reid.cli, "COMMANDS", ("index", "search"))
    return lambda *argv: reid.cli.main([str(a) for a in argv])


def _engine(weights):
    return ("--weights", weights, "--device", "cpu", "--batch-size", "4")


def test_index_then_search(cli, weights, market_dir, tmp_path, capsys):
    gallery = tmp_path / "g"
    assert (
        cli(
            "index",
            market_dir,
            "--gallery",
            gallery,
            "--chunk-size",
            "3",
            "--workers",
            "2",
            *_engine(weights),
        )
        == 0
    )
    assert "indexed 10, skipped 0 already indexed, failed 0" in capsys.readouterr().out

    query = market_dir / "query" / "0001_c1s1_000001_01.jpg"
    assert cli("search", query, "--gallery", gallery, "-k", "3", "--json", *_engine(weights)) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert found["query"] == str(query)
    hits = found["hits"]
    assert hits[0]["key"] == "query/0001_c1s1_000001_01.jpg"  # the query itself was indexed too
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert is_best_first([h["score"] for h in hits])

    argv = ("search", query, "--gallery", gallery, "-k", "9", "--cameras-in", "2", "--json")
    assert cli(*argv, *_engine(weights)) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert found["hits"]
    assert {h["camera_id"] for h in found["hits"]} == {2}

    out = tmp_path / "pictures"
    argv = ("search", query, "--gallery", gallery, "-k", "4", "--exclude-same-camera", "--visualize", out)
    assert cli(*argv, *_engine(weights)) == 0
    text = capsys.readouterr().out
    assert f"{query} (person 1, camera 1)" in text
    ranks = [line.split() for line in text.splitlines() if line.startswith("  ")]
    assert len(ranks) == 4
    assert all(r[5] == "camera" and r[6] != "1" for r in ranks)  # nothing from the query's camera
    (png,) = out.glob("*.png")
    assert (out / "index.html").is_file()
    persons = [int(r[4]) if r[4] != "None" else None for r in ranks]
    step = 64 + 2 * visualize.BORDER + visualize.GAP
    with Image.open(png) as image:
        frames = [
            image.convert("RGB").getpixel(
                (visualize.GAP + step + visualize.QUERY_GAP + i * step + 1, visualize.GAP + 1)
            )
            for i in range(4)
        ]
    assert frames == [visualize.MATCH_COLOUR if p == 1 else visualize.MISMATCH_COLOUR for p in persons]


def test_search_reranks_each_query_on_its_own(cli, weights, market_dir, tmp_path, capsys):
    gallery = tmp_path / "g"
    assert cli("index", market_dir / "bounding_box_test", "--gallery", gallery, *_engine(weights)) == 0
    queries = sorted((market_dir / "query").glob("*.jpg"))
    capsys.readouterr()

    def search(*images):
        assert (
            cli("search", *images, "--gallery", gallery, "-k", "5", "--rerank", "--json", *_engine(weights))
            == 0
        )
        return {result["query"]: result["hits"] for result in json.loads(capsys.readouterr().out)}

    alone = search(queries[0])[str(queries[0])]
    together = search(*queries)[str(queries[0])]
    assert len(queries) > 1
    assert [h["id"] for h in together] == [h["id"] for h in alone]
    # Equal up to float noise: the query embeddings come from batches of different sizes.
    assert [h["score"] for h in together] == pytest.approx([h["score"] for h in alone], abs=1e-4)


def test_index_kind_and_failure_log_of_a_new_milvus_gallery(cli, weights, market_dir, tmp_path, capsys):
    pytest.importorskip("pymilvus")
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.jpg").write_bytes((market_dir / "query" / "0001_c1s1_000001_01.jpg").read_bytes())
    (source / "b.jpg").write_bytes(b"junk")
    spec = GallerySpec(str(tmp_path / "m.db"), backend="milvus")
    log = tmp_path / "logs" / "failed.log"
    argv = ["index", source, "--gallery", spec.location, "--backend", "milvus", "--index", "HNSW"]
    assert cli(*argv, "--failure-log", log, *_engine(weights)) == 1
    assert f"failed 1 (reasons in {log})" in capsys.readouterr().out
    assert log.read_text().startswith(f"{source / 'b.jpg'}\t")
    with spec.open() as gallery:
        assert (gallery.index_kind, gallery.count()) == ("HNSW", 1)


def test_index_exit_codes(cli, weights, market_dir, tmp_path, capsys):
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.jpg").write_bytes((market_dir / "query" / "0001_c1s1_000001_01.jpg").read_bytes())
    (source / "b.jpg").write_bytes(b"junk")
    assert cli("index", source, "--gallery", tmp_path / "g", *_engine(weights)) == 1  # completed, one failed
    assert "indexed 1, skipped 0 already indexed, failed 1 (reasons in" in capsys.readouterr().out
    assert cli("index", tmp_path / "nowhere", "--gallery", tmp_path / "g", *_engine(weights)) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_ray_engine_without_ray_names_the_extra(cli, weights, market_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    argv = ("index", market_dir, "--gallery", tmp_path / "g", "--engine", "ray", *_engine(weights))
    assert cli(*argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the Ray engine needs the ray extra: pip install '.[ray]'")


def test_ray_options_reach_the_ray_job(cli, weights, market_dir, tmp_path, monkeypatch, capsys):
    calls = []

    def job(source, gallery, weights, options, **kwargs):
        calls.append((source, gallery, weights, options, kwargs))
        return IndexSummary(total=3, indexed=2, skipped=0, failed=1, seconds=1.0, gallery_count=2)

    monkeypatch.setattr(reid.cli.index, "index_source_ray", job)
    ray_args = ("--engine", "ray", "--ray-address", "ray://head:10001", "--replicas", 3, "--gpus-per-replica")
    argv = ("index", market_dir, "--gallery", tmp_path / "m.db", "--backend", "milvus", *ray_args, 0.5)
    assert cli(*argv, "--chunk-size", 8, "--no-resume", "--flip", *_engine(weights)) == 1  # one failed
    assert "indexed 2, skipped 0 already indexed, failed 1" in capsys.readouterr().out
    (call,) = calls
    assert call[:4] == (
        market_dir,
        GallerySpec(str(tmp_path / "m.db"), backend="milvus"),
        str(weights),
        EngineOptions(device="cpu", flip=True, max_batch_size=4),
    )
    assert call[4] == {
        "chunk_size": 8,
        "replicas": 3,
        "gpus_per_replica": 0.5,
        "cpus_per_replica": 1.0,
        "resume": False,
        "shard_dir": None,
        "log_path": None,
        "address": "ray://head:10001",
    }


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--replicas", "2"), "--replicas apply to --engine ray only"),
        (("--engine", "ray", "--workers", "2"), "--workers applies to the local engine"),
    ],
)
def test_flags_of_the_other_engine_are_refused(cli, weights, market_dir, tmp_path, capsys, flags, message):
    assert cli("index", market_dir, "--gallery", tmp_path / "g", *flags, *_engine(weights)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


# Indexes with a pause before each chunk is committed, so that the test can kill it half-way.
DRIVER = """
import sys, time
import reid.cli
import reid.jobs.index as job

stream = job.embed_stream

def paused(*args, **kwargs):
    # Two chunks go through; then the job stalls, so the test's kill always lands mid-run.
    for n, result in enumerate(stream(*args, **kwargs)):
        time.sleep(0.25 if n < 2 else 120)
        yield result

job.embed_stream = paused
reid.cli.COMMANDS = ("index",)
sys.exit(reid.cli.main(sys.argv[1:]))
"""


def _count(gallery: Path) -> int:
    db = gallery / "gallery.sqlite"
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])
        except sqlite3.OperationalError:  # schema not created yet
            return 0


def test_resume_after_kill_gives_one_entry_per_file(cli, weights, tmp_path, capsys):
    source = tmp_path / "market"
    make_synthetic_market(source, num_ids=3, num_train_ids=0, num_cameras=2, num_junk=2)
    records = scan_folder(source)
    assert len(records) == 24
    gallery = tmp_path / "g"
    argv = ["index", source, "--gallery", gallery, "--chunk-size", "4", *_engine(weights)]
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *map(str, argv)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _count(gallery) < 8:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = _count(gallery)
    assert 8 <= done < len(records)  # killed half-way

    assert cli(*argv) == 0
    assert f"indexed {len(records) - done}, skipped {done} already indexed" in capsys.readouterr().out
    with open_gallery(gallery, read_only=True) as g:
        assert g.count() == len(records)
        stored = g.get(g.lookup([r.key for r in records]))  # raises if a key is missing
    assert len({item.id for item in stored}) == len(records)
    expected = calibrated_extractor().embed([r.path for r in records])
    np.testing.assert_allclose(np.stack([item.vector for item in stored]), expected, atol=1e-5)


def test_search_filters_combine_the_flags_with_each_querys_camera(tmp_path):
    import argparse

    from reid.cli import search as search_cli
    from reid.datasets import ImageRecord
    from reid.errors import ConfigError
    from reid.gallery import Filters

    parser = argparse.ArgumentParser()
    search_cli.register(parser.add_subparsers())
    queries = [
        ImageRecord(tmp_path / name, name) for name in ("0001_c1s1_000001_01.jpg", "0002_c3s1_000001_01.jpg")
    ]

    def filters(*flags):
        return search_cli._filters(queries, parser.parse_args(["search", "q.jpg", "--gallery", "g", *flags]))

    assert filters("--person-ids", "1") == Filters(person_ids={1})
    assert filters("--person-ids", "1", "--exclude-same-camera") == [
        Filters(person_ids={1}, exclude_camera=1),
        Filters(person_ids={1}, exclude_camera=3),
    ]
    with pytest.raises(ConfigError, match="not both"):
        filters("--exclude-camera", "2", "--exclude-same-camera")


def test_search_with_a_track_query_grouped_by_track(cli, weights, labelled_market, tmp_path, capsys):
    gallery = tmp_path / "g"
    source = labelled_market.root / "bounding_box_test"
    assert cli("index", source, "--gallery", gallery, *_engine(weights)) == 0
    first = sorted(source.glob("0013_c2s1_*.jpg"))[0].name
    with open_gallery(gallery) as opened:  # Market names give every crop its track
        (item_id,) = opened.lookup([first])
        assert opened.get([item_id])[0].track_id == "0013_c2s1"
    capsys.readouterr()
    crops = sorted((labelled_market.root / "query").glob("0013_c1s1_*.jpg"))
    assert len(crops) == 3

    def search(*flags):
        assert cli("search", *crops, "--gallery", gallery, "--json", *flags, *_engine(weights)) == 0
        return json.loads(capsys.readouterr().out)

    (track,) = search("--track", "--group-by", "track_id", "-k", "5")
    tracks = [hit["track_id"] for hit in track["hits"] if hit["track_id"] is not None]
    assert len(track["hits"]) == 5
    assert len(tracks) == len(set(tracks))  # distractors and junk have no track: each stands alone
    assert is_best_first([hit["score"] for hit in track["hits"]])
    each = search("-k", "5")
    assert len(each) == 3  # without --track, one query per crop
    (strict,) = search("--track", "-k", "80", "--min-score", str(track["hits"][2]["score"]))
    assert 3 <= len(strict["hits"]) < 80
