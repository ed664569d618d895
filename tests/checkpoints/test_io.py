"""Reading weight files safely: no pickle ever runs code; wrappers and prefixes are peeled off."""

from __future__ import annotations

import os
import pathlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from reid.checkpoints import read_state_dict, sha256_file, unwrap_state_dict, write_safetensors
from reid.errors import CheckpointError, UnsafeCheckpoint


class _TouchOnLoad:
    """Unpickling this calls ``Path.touch(marker)``: a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.touch, (self.marker,))


class _SystemOnLoad:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_TouchOnLoad, _SystemOnLoad])
def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path, payload: type) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": payload(marker)}, path)
    with pytest.raises(UnsafeCheckpoint, match=r"refused to load .*evil\.pth") as info:
        read_state_dict(path)
    assert "arbitrary code" in str(info.value)
    assert not marker.exists()
    # The payload is live: an unrestricted unpickler does run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_pickled_module_object_is_refused_naming_the_class(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # strong-baseline's "'Baseline' object" files look like this
    with pytest.raises(UnsafeCheckpoint, match=r"torch\.nn\.modules\.linear\.Linear"):
        read_state_dict(path)


def test_plain_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"x": _TouchOnLoad(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpoint):
        read_state_dict(path)
    assert not marker.exists()


def test_truncated_file_is_corrupt_not_unsafe(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    torch.save({"a": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        read_state_dict(path)
    assert not isinstance(info.value, UnsafeCheckpoint)


@pytest.mark.parametrize("name", ["garbage.safetensors", "garbage.bin"])
def test_garbage_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage"):
        read_state_dict(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not found: .*missing\.pth"):
        read_state_dict(tmp_path / "missing.pth")


def test_numpy_metadata_of_torchreid_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "model.pth.tar-60"
    torch.save({"state_dict": {"module.conv1.weight": torch.ones(2)}, "rank1": np.float32(0.9)}, path)
    assert read_state_dict(path).keys() == {"conv1.weight"}


def test_numpy1_scalar_name_is_accepted(tmp_path: Path) -> None:
    # numpy 1.x pickles name the scalar constructor numpy.core.multiarray.scalar (numpy 2: numpy._core).
    path = tmp_path / "legacy.pth"
    torch.save(
        {"conv1.weight": torch.ones(2), "rank1": np.float64(0.5)}, path, _use_new_zipfile_serialization=False
    )
    data = path.read_bytes()
    assert b"numpy._core.multiarray" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert torch.equal(read_state_dict(path)["conv1.weight"], torch.ones(2))


def test_safetensors_under_another_name(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    safetensors.torch.save_file({"a": torch.arange(3.0)}, path)
    assert torch.equal(read_state_dict(path)["a"], torch.arange(3.0))


def test_unwrap_nested_wrappers_and_data_parallel_prefix() -> None:
    weights = {"module.conv1.weight": torch.ones(1), "module.bn1.bias": torch.zeros(1), "module.note": "x"}
    checkpoint = {"state_dict": {"model": weights}, "optimizer": {"state": {}}, "epoch": 3}
    assert unwrap_state_dict(checkpoint).keys() == {"conv1.weight", "bn1.bias"}


def test_prefix_kept_unless_every_key_has_it() -> None:
    weights = {"module.conv1.weight": torch.ones(1), "head.weight": torch.ones(1)}
    assert unwrap_state_dict(weights).keys() == weights.keys()


@pytest.mark.parametrize(
    ("content", "message"), [([torch.ones(1)], "holds a list"), ({"epoch": 3}, "no tensors")]
)
def test_unwrap_refuses_non_state_dicts(content: object, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        unwrap_state_dict(content, "x.pth")


def test_write_safetensors_is_atomic_and_keeps_metadata(tmp_path: Path) -> None:
    path = tmp_path / "out.safetensors"
    write_safetensors({"a": torch.arange(4.0).view(2, 2).t()}, path, metadata={"format": "pt", "k": "v"})
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]
    with safetensors.safe_open(path, "pt") as f:
        assert f.metadata() == {"format": "pt", "k": "v"}
    assert torch.equal(read_state_dict(path)["a"], torch.tensor([[0.0, 2.0], [1.0, 3.0]]))


def test_write_safetensors_failure_leaves_nothing(tmp_path: Path) -> None:
    shared = torch.zeros(4)
    with pytest.raises(RuntimeError):
        write_safetensors(
            {"a": shared, "b": shared}, tmp_path / "out.safetensors"
        )  # shared storage is refused
    assert list(tmp_path.iterdir()) == []


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
