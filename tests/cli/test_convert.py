"""`reid convert`: a fast-reid training checkpoint in, a clean safetensors + manifest out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import reid.cli
from reid.checkpoints import load_checkpoint, read_manifest
from reid.models import reid_config
from tests.checkpoints.helpers import embed, rename, save
from tests.helpers import assert_same_outputs, random_model


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(reid.cli, "COMMANDS", ("convert",))
    return reid.cli.main


@pytest.fixture
def fastreid_checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    model = random_model(reid_config("resnet18_ibn_a", backbone_overrides={"stem_pool": "ceil"}))
    state = rename(model.state_dict(), [("backbone.", "backbone."), ("head.bnneck.", "heads.bottleneck.0.")])
    state["heads.weight"] = torch.randn(751, 512)
    return save({"model": state, "epoch": 59}, tmp_path / "model_final.pth"), model


def test_convert_end_to_end(
    cli, fastreid_checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, model = fastreid_checkpoint
    dst = tmp_path / "market_r18_ibn.safetensors"
    assert cli(["convert", str(src), str(dst), "--height", "384", "--width", "128"]) == 0

    manifest = read_manifest(dst)
    assert manifest is not None
    assert manifest.source == "reid"
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    for part in (
        "(fast-reid)",
        "resnet18_ibn_a",
        "512-d",
        "384x128",
        manifest.fingerprint,
        "dropped 1 classifier",
    ):
        assert part in out
    loaded = load_checkpoint(dst)
    assert (loaded.preprocess.height, loaded.preprocess.interpolation, loaded.preprocess.pixel_range) == (
        384,
        "bicubic",
        255,
    )
    assert_same_outputs(embed(loaded.model), embed(model))


def test_convert_with_explicit_source_and_last_stride(cli, fastreid_checkpoint, tmp_path: Path) -> None:
    src, _ = fastreid_checkpoint
    dst = tmp_path / "out.safetensors"
    assert cli(["convert", str(src), str(dst), "--source", "fast-reid", "--last-stride", "2"]) == 0
    manifest = read_manifest(dst)
    assert manifest is not None
    assert manifest.model.backbone.last_stride == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["OUT.pth"], "must end in .safetensors"),
        (["OUT.safetensors", "--height", "384"], "--height and --width together"),
        (["OUT.safetensors", "--source", "torchvision"], "as a torchvision checkpoint"),
    ],
)
def test_convert_errors_exit_2_with_a_message(
    cli,
    fastreid_checkpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    src, _ = fastreid_checkpoint
    args = ["convert", str(src), str(tmp_path / extra[0]), *extra[1:]]
    assert cli(args) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("OUT*"))
