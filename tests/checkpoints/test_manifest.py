"""Manifest records: round trips, validation with clear errors, and one manifest per stem."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reid.checkpoints import Manifest, manifest_path, read_manifest, write_manifest
from reid.errors import CheckpointError
from reid.models import reid_config
from reid.preprocess import PreprocessConfig

SHA = "ab" * 32


def _manifest(**changes: object) -> Manifest:
    values: dict[str, object] = {
        "model": reid_config("se_resnet50_ibn_a", pooling="gem"),
        "preprocess": PreprocessConfig.fastreid(height=384),
        "source": "reid",
        "weights_file": "m.safetensors",
        "sha256": SHA,
        "embedding_dim": 2048,
        "fingerprint": "se_resnet50_ibn_a-0123456789abcdef",
        "notes": "converted from fast-reid",
        "created_at": "2026-01-02T03:04:05+00:00",
    }
    values.update(changes)
    return Manifest(**values)  # type: ignore[arg-type]


def test_dict_round_trip_through_json() -> None:
    manifest = _manifest()
    record = json.loads(json.dumps(manifest.to_dict()))
    assert record["format_version"] == 1
    assert record["model"]["backbone"]["layers"] == [3, 4, 6, 3]
    assert record["preprocess"]["mean"] == pytest.approx([123.675, 116.28, 103.53])
    assert Manifest.from_dict(record) == manifest


def test_write_and_read_beside_the_weights(tmp_path: Path) -> None:
    weights = tmp_path / "m.safetensors"
    manifest = _manifest()
    assert write_manifest(weights, manifest) == tmp_path / "m.json" == manifest_path(weights)
    assert read_manifest(weights) == manifest
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left behind


def test_absent_manifest_is_none(tmp_path: Path) -> None:
    assert read_manifest(tmp_path / "m.safetensors") is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(format_version=2), "format_version 2"),
        (lambda r: r.update(source="caffe"), "source 'caffe'"),
        (lambda r: r.update(sha256="xyz"), "sha256"),
        (lambda r: r.update(embedding_dim=512), "embedding_dim 512"),
        (lambda r: r.update(fingerprint="resnet18-0123456789abcdef"), "fingerprint"),
        (lambda r: r.update(weights_file="../m.safetensors"), "weights_file"),
        (lambda r: r.update(embedding_dim="2048"), "embedding_dim must be a int"),
        (lambda r: r.pop("sha256"), r"lacks field\(s\) \['sha256'\]"),
        (lambda r: r.update(extra=1), r"unknown manifest field\(s\) \['extra'\]"),
        (lambda r: r["model"].update(pooling="median"), "pooling"),
        (lambda r: r["preprocess"].update(interpolation="lanczos"), "interpolation"),
    ],
)
def test_invalid_manifest_names_file_and_problem(tmp_path: Path, mutate, message: str) -> None:
    record = _manifest().to_dict()
    mutate(record)
    (tmp_path / "m.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=message) as info:
        read_manifest(tmp_path / "m.safetensors")
    assert "m.json" in str(info.value)


def test_not_json(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"invalid manifest .*m\.json"):
        read_manifest(tmp_path / "m.safetensors")


def test_write_refuses_a_manifest_for_another_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"describes m\.safetensors, not other\.safetensors"):
        write_manifest(tmp_path / "other.safetensors", _manifest())


def test_write_refuses_to_replace_a_siblings_manifest(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.pth", _manifest(weights_file="m.pth", source="fast-reid"))
    with pytest.raises(CheckpointError, match=r"m\.json already describes m\.pth"):
        write_manifest(tmp_path / "m.safetensors", _manifest())
    # The same file's manifest is simply replaced.
    updated = dataclasses.replace(_manifest(weights_file="m.pth", source="fast-reid"), notes="v2")
    write_manifest(tmp_path / "m.pth", updated)
    assert read_manifest(tmp_path / "m.pth") == updated


def test_write_replaces_an_unreadable_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("garbage")
    write_manifest(tmp_path / "m.safetensors", _manifest())
    assert read_manifest(tmp_path / "m.safetensors") == _manifest()
