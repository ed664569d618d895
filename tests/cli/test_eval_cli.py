"""`reid synth` and `reid eval`, end to end with a small checkpoint."""

import json
import shutil

import pytest

import reid.cli
from reid.checkpoints import read_manifest
from reid.datasets import label_arrays, load_market
from reid.evaluation import cosine_distance, evaluate_rank
from tests.helpers import calibrated_extractor


@pytest.fixture(scope="session")
def weights(tiny_checkpoint):
    """The calibrated tiny model's checkpoint, written once per test run (tests/conftest.py)."""
    return tiny_checkpoint


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setattr(reid.cli, "COMMANDS", ("synth", "eval"))
    return lambda *argv: reid.cli.main([str(a) for a in argv])


def test_synth_then_eval(cli, weights, tmp_path, capsys):
    data = tmp_path / "market"
    sizes = ("--ids", "3", "--train-ids", "0", "--cameras", "2", "--per-camera", "1", "--junk", "2")
    assert cli("synth", data, *sizes, "--height", "64", "--width", "32") == 0
    assert capsys.readouterr().out == f"wrote {data}: 6 query, 12 gallery, 0 train images\n"
    assert cli("synth", data) == 2  # refuses to mix two datasets
    assert "not empty" in capsys.readouterr().err

    engine = ("--weights", weights, "--device", "cpu", "--batch-size", "8")
    out, report = tmp_path / "pictures", tmp_path / "report.json"
    assert cli("eval", data, "--visualize", "2", "--top-k", "4", "--out", out, "--json", report, *engine) == 0
    text = capsys.readouterr().out
    assert "Rank-1" in text
    assert f"pictures: {out / 'index.html'}" in text
    assert len(list(out.glob("*.png"))) == 2
    result = json.loads(report.read_text())
    assert (result["num_query"], result["num_gallery"], result["rerank"]) == (6, 12, None)
    assert result["model"]["model"] == calibrated_extractor().fingerprint

    dataset = load_market(data)  # the same numbers, computed without the runner
    extractor = calibrated_extractor()
    q = extractor.embed([r.path for r in dataset.query])
    g = extractor.embed([r.path for r in dataset.gallery])
    q_pids, q_camids = label_arrays(dataset.query)
    g_pids, g_camids = label_arrays(dataset.gallery)
    expected = evaluate_rank(cosine_distance(q, g), q_pids, g_pids, q_camids, g_camids)
    assert result["metrics"]["mAP"] == pytest.approx(expected.mAP, abs=1e-4)
    assert result["metrics"]["rank1"] == pytest.approx(expected.rank(1))
    assert f"{100 * expected.mAP:.2f}%" in text

    assert cli("eval", data, "--rerank", "--k1", "4", "--flip", "--json", report, *engine) == 0
    result = json.loads(report.read_text())
    assert result["rerank"]["k1"] == 4
    assert result["model"]["flip"] is True


def test_eval_track_level_and_saved_thresholds(cli, trained_small, labelled_market, tmp_path, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    for part in trained_small.checkpoint.parent.glob("model.*"):
        shutil.copy(part, weights / part.name)
    engine = ("--weights", weights, "--device", "cpu", "--batch-size", "16")
    assert (
        cli("eval", labelled_market.root, "--track-level", "--save-thresholds", "--fmr", "0.01", *engine) == 0
    )
    text = capsys.readouterr().out
    assert "crops" in text
    assert "tracks" in text
    assert "FMR" in text
    manifest = read_manifest(weights / "model.safetensors")
    assert manifest is not None
    assert manifest.thresholds is not None
    (level,) = manifest.thresholds["levels"]
    assert level["fmr"] == 0.01
    assert -1 <= level["score"] <= 1
    assert manifest.fingerprint == trained_small.manifest.fingerprint  # same weights, richer manifest


def test_save_thresholds_needs_weights(cli, labelled_market, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("eval", labelled_market.root, "--save-thresholds", "--device", "cpu") == 2
    assert "needs weights" in capsys.readouterr().err
