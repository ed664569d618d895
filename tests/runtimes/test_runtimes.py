"""Choosing a runtime: by suffix, by folder content, by --runtime; mismatches are clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from reid.engine import EngineOptions, find_checkpoint, load_extractor
from reid.errors import ConfigError
from reid.export import ExportOptions, export_checkpoint
from reid.export.verify import relative_error
from reid.runtimes import BatchProfile, find_artifact, runtime_for_path
from reid.runtimes.artifact import THRESHOLDS
from tests.helpers import smooth_images

CPU = EngineOptions(device="cpu")


def test_runtime_follows_the_suffix() -> None:
    assert runtime_for_path("m.onnx") == "onnxruntime"
    assert runtime_for_path("dir/m.XML") == "openvino"
    assert runtime_for_path("m.ep") == "tensorrt"
    assert runtime_for_path("m.safetensors") is None


def test_artifacts_load_on_the_runtime_their_suffix_names(
    onnx_artifact: Path, openvino_artifact: Path
) -> None:
    for artifact, runtime in ((onnx_artifact, "onnxruntime"), (openvino_artifact, "openvino")):
        for weights in (artifact, artifact.parent):  # the file, or the folder holding it
            extractor = load_extractor(weights, options=CPU)
            assert extractor.runtime.name == runtime
            extractor.close()


def test_an_ir_folder_is_not_mistaken_for_a_checkpoint(openvino_artifact: Path) -> None:
    # model.bin carries a checkpoint suffix, but it is the IR's weights.
    assert find_checkpoint(openvino_artifact.parent) is None


def test_checkpoint_beside_an_artifact_needs_a_runtime(
    onnx_artifact: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    for file in (onnx_artifact, onnx_artifact.with_name(onnx_artifact.name + ".json"), tiny_checkpoint):
        shutil.copy(file, tmp_path / file.name)
    shutil.copy(tiny_checkpoint.with_suffix(".json"), tmp_path / tiny_checkpoint.with_suffix(".json").name)
    with pytest.raises(ConfigError, match="choose with --runtime"):
        load_extractor(tmp_path, options=CPU)
    assert (
        load_extractor(tmp_path, options=EngineOptions(device="cpu", runtime="torch")).runtime.name == "torch"
    )
    onnx = load_extractor(tmp_path, options=EngineOptions(device="cpu", runtime="onnxruntime"))
    assert onnx.runtime.name == "onnxruntime"


def test_runtime_mismatches_are_refused(onnx_artifact: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="is an artifact of onnxruntime"):
        find_artifact(onnx_artifact, "openvino")
    with pytest.raises(ConfigError, match="is an artifact of onnxruntime"):
        load_extractor(onnx_artifact, options=EngineOptions(device="cpu", runtime="torch"))
    with pytest.raises(ConfigError, match="no openvino artifact"):
        load_extractor(tiny_checkpoint, options=EngineOptions(device="cpu", runtime="openvino"))
    with pytest.raises(ConfigError, match="runtime must be one of"):
        EngineOptions(runtime="tflite")  # type: ignore[arg-type]


def test_an_artifact_without_its_manifest_is_not_run(onnx_artifact: Path, tmp_path: Path) -> None:
    lone = tmp_path / onnx_artifact.name
    shutil.copy(onnx_artifact, lone)
    with pytest.raises(Exception, match="no manifest"):
        load_extractor(lone, options=CPU)


def test_batches_outside_a_fixed_profile_are_padded_and_chunked(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    pytest.importorskip("openvino")
    options = ExportOptions(format="openvino", dtype="fp32", batch=BatchProfile(4, 4, 4), num_samples=4)
    artifact = export_checkpoint(tiny_checkpoint, options, tmp_path).path
    exported = load_extractor(artifact, options=CPU)
    reference = load_extractor(tiny_checkpoint, options=CPU)
    images = smooth_images(7, 64, 32, seed=3)
    expected = reference.embed_batch(images)
    for count in (1, 3, 7):  # padded to 4; 7 = 4 + 3 padded to 4
        got = exported.embed_batch(images[:count])
        assert got.shape == (count, 512)
        error, _ = relative_error(expected[: max(count, 2)], np.concatenate([got, expected[count:2]]))
        assert error <= THRESHOLDS["fp32"]
