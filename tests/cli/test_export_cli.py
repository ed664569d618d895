"""`reid export`, then `reid embed`, `reid index` and `reid eval` on the artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import reid.cli
from reid.export.verify import relative_error
from reid.runtimes.artifact import THRESHOLDS, read_artifact_manifest
from tests.helpers import jpeg_bytes, smooth_images


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setattr(reid.cli, "COMMANDS", ("export", "embed", "index", "eval"))
    return lambda *argv: reid.cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pictures")
    for i, image in enumerate(smooth_images(5, 64, 32, seed=21)):
        (folder / f"{i}.jpg").write_bytes(jpeg_bytes(image))
    return folder


def test_export_refuses_then_forces(cli, tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("openvino")
    args = ("export", tiny_checkpoint, "--format", "openvino", "--dtype", "fp32", "--threshold", "0")
    assert cli(*args, "--out", tmp_path / "refused") == 2
    assert "error: the openvino fp32 artifact" in capsys.readouterr().err
    assert list((tmp_path / "refused").iterdir()) == []  # no artifact, no staging folder left behind
    # Forced: written, recorded, and the exit status still says it failed.
    assert cli(*args, "--out", tmp_path / "forced.xml", "--force", "--max-batch", "4") == 1
    assert "FAILED (written with --force)" in capsys.readouterr().out
    manifest = read_artifact_manifest(tmp_path / "forced.xml")
    assert manifest.verification.forced
    assert (manifest.batch.opt, manifest.batch.max) == (4, 4)


def test_export_writes_beside_the_checkpoint_by_default(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    (tmp_path / "w").mkdir()
    for file in (tiny_checkpoint, tiny_checkpoint.with_suffix(".json")):
        (tmp_path / "w" / file.name).write_bytes(file.read_bytes())
    assert cli("export", tmp_path / "w", "--format", "onnx", "--max-batch", "8") == 0
    assert read_artifact_manifest(tmp_path / "w" / "tiny-onnx-fp32" / "tiny.onnx").verification.passed


def _embed(cli, pictures: Path, out: Path, weights: Path) -> tuple[np.ndarray, dict]:
    assert cli("embed", pictures, "--out", out, "--weights", weights, "--device", "cpu") == 0
    return np.load(out), json.loads(out.with_suffix(".json").read_text())


@pytest.mark.parametrize("artifact_fixture", ["onnx_artifact", "openvino_artifact"])
def test_embed_on_an_artifact_matches_torch(
    cli, artifact_fixture, request, tiny_checkpoint: Path, pictures: Path, tmp_path: Path
) -> None:
    artifact: Path = request.getfixturevalue(artifact_fixture)
    torch_vectors, torch_index = _embed(cli, pictures, tmp_path / "torch.npy", tiny_checkpoint)
    vectors, index = _embed(cli, pictures, tmp_path / "artifact.npy", artifact)
    assert index["keys"] == torch_index["keys"]
    assert index["model"] == torch_index["model"]  # fp32, verified: same fingerprint
    error, _ = relative_error(torch_vectors, vectors)
    assert error <= THRESHOLDS["fp32"]


def test_index_with_an_artifact_joins_the_checkpoints_gallery(
    cli, tiny_checkpoint: Path, onnx_artifact: Path, market_dir: Path, tmp_path: Path, capsys
) -> None:
    gallery = tmp_path / "gallery"
    query = market_dir / "query"
    assert cli("index", query, "--gallery", gallery, "--weights", tiny_checkpoint, "--device", "cpu") == 0
    # Same fingerprint: the ONNX artifact may add to the checkpoint's gallery.
    test_set = market_dir / "bounding_box_test"
    assert cli("index", test_set, "--gallery", gallery, "--weights", onnx_artifact, "--device", "cpu") == 0
    assert "failed 0" in capsys.readouterr().out


def test_eval_on_an_artifact_matches_torch(
    cli, tiny_checkpoint: Path, openvino_artifact: Path, market_dir: Path, tmp_path: Path
) -> None:
    results = {}
    for name, weights in (("torch", tiny_checkpoint), ("openvino", openvino_artifact)):
        out = tmp_path / f"{name}.json"
        assert cli("eval", market_dir, "--weights", weights, "--device", "cpu", "--json", out) == 0
        results[name] = json.loads(out.read_text())
    assert results["openvino"]["model"]["runtime"] == "openvino"
    assert results["openvino"]["model"]["model"] == results["torch"]["model"]["model"]
