"""Round trips: our model saved in each framework's key layout (built here from the public key names) loads
back through auto-detection with the same config and bit-identical outputs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision

from reid.checkpoints import convert_checkpoint, load_checkpoint, read_manifest, write_checkpoint_manifest
from reid.errors import CheckpointError
from reid.models import ReIDConfig, reid_config
from reid.preprocess import PreprocessConfig
from tests.checkpoints.helpers import embed, rename, save
from tests.helpers import assert_same_outputs, random_model, randomize_norms

FORMATS = [".pth", ".safetensors"]
IMAGENET_HEAD: dict[str, Any] = {"bnneck": False, "neck_feat": "before"}


def _load_and_compare(path: Path, cfg: ReIDConfig, reference: torch.nn.Module, **kwargs: object):
    loaded = load_checkpoint(path, **kwargs)  # type: ignore[arg-type]
    assert loaded.config == cfg
    assert not loaded.model.training
    assert_same_outputs(embed(loaded.model), embed(reference))
    return loaded


@pytest.mark.parametrize("suffix", FORMATS)
def test_fastreid_current_layout(tmp_path: Path, suffix: str) -> None:
    # SBS-style: IBN-a, non-local units, learnable GeM, BNNeck, ceil-mode stem pool.
    cfg = reid_config(
        "resnet18_ibn_a", backbone_overrides={"stem_pool": "ceil", "non_local": (0, 1, 1, 0)}, pooling="gem"
    )
    model = random_model(cfg)
    state = rename(
        model.state_dict(),
        [
            ("backbone.", "backbone."),
            ("head.bnneck.", "heads.bottleneck.0."),
            ("head.pool.p", "heads.pool_layer.p"),
        ],
    )
    state["heads.weight"] = torch.randn(751, 512)
    # Checkpointer.save: {"model": ..., "optimizer": ..., "scheduler": ..., "epoch": ...}
    wrapped = {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "epoch": 59}
    path = save(wrapped if suffix == ".pth" else state, tmp_path / f"model_final{suffix}")
    loaded = _load_and_compare(path, cfg, model)
    assert loaded.source == "fast-reid"
    assert loaded.report.dropped_classifier == ("head.classifier.weight",)
    assert loaded.preprocess == PreprocessConfig.fastreid(height=384, width=128)
    assert loaded.manifest is None


def test_fastreid_2020_model_zoo_layout(tmp_path: Path) -> None:
    cfg = reid_config("resnet18", backbone_overrides={"stem_pool": "ceil"})
    model = random_model(cfg)
    state = rename(
        model.state_dict(), [("backbone.", "module.backbone."), ("head.bnneck.", "module.heads.bnneck.")]
    )
    state["module.heads.classifier.weight"] = torch.randn(702, 512)
    state["module.pixel_mean"] = torch.tensor([120.0, 115.0, 100.0]).view(1, 3, 1, 1)
    state["module.pixel_std"] = torch.tensor([58.0, 57.0, 57.5]).view(1, 3, 1, 1)
    loaded = _load_and_compare(save({"model": state}, tmp_path / "market_bot_R18.pth"), cfg, model)
    assert loaded.source == "fast-reid"
    assert loaded.dropped == ("pixel_mean", "pixel_std")
    assert loaded.preprocess.mean == (120.0, 115.0, 100.0)
    assert loaded.preprocess.std == (58.0, 57.0, 57.5)
    assert (loaded.preprocess.height, loaded.preprocess.pixel_range, loaded.preprocess.interpolation) == (
        256,
        255,
        "bicubic",
    )


@pytest.mark.parametrize("suffix", FORMATS)
def test_strong_baseline_plain_resnet(tmp_path: Path, suffix: str) -> None:
    cfg = reid_config("resnet18", backbone_overrides={"stem_relu": False})
    model = random_model(cfg)
    state = rename(model.state_dict(), [("backbone.", "base."), ("head.bnneck.", "bottleneck.")])
    state["classifier.weight"] = torch.randn(751, 512)
    loaded = _load_and_compare(save(state, tmp_path / f"resnet18_model_120{suffix}"), cfg, model)
    assert loaded.source == "strong-baseline"
    assert loaded.preprocess == PreprocessConfig.torchvision()


def test_strong_baseline_ibn_keeps_stem_relu_and_drops_unused_fc(tmp_path: Path) -> None:
    cfg = reid_config("resnet18_ibn_a")
    model = random_model(cfg)
    state = rename(model.state_dict(), [("backbone.", "base."), ("head.bnneck.", "bottleneck.")])
    state.update({"base.fc.weight": torch.randn(1000, 512), "base.fc.bias": torch.randn(1000)})
    state["classifier.weight"] = torch.randn(751, 512)
    loaded = _load_and_compare(save(state, tmp_path / "resnet18_ibn_a_model_120.pth"), cfg, model)
    assert loaded.dropped == ("base.fc.bias", "base.fc.weight")


def test_torchreid_checkpoint(tmp_path: Path) -> None:
    # torchreid resnet: torchvision names, biased classifier, no BNNeck, layer4 stride 2, DataParallel prefix,
    # saved by save_checkpoint as model.pth.tar-<epoch> with numpy metadata.
    cfg = reid_config("resnet18", last_stride=2, **IMAGENET_HEAD)
    model = random_model(cfg)
    state = rename(model.state_dict(), [("backbone.", "module.")])
    state.update(
        {"module.classifier.weight": torch.randn(751, 512), "module.classifier.bias": torch.randn(751)}
    )
    checkpoint = {"state_dict": state, "epoch": 60, "rank1": np.float32(0.87), "optimizer": {"state": {}}}
    loaded = _load_and_compare(save(checkpoint, tmp_path / "model.pth.tar-60"), cfg, model)
    assert loaded.source == "torchreid"
    assert loaded.report.dropped_classifier == ("head.classifier.bias", "head.classifier.weight")


def test_torchvision_resnet50(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None)
    randomize_norms(reference)
    reference.eval()
    path = save(reference.state_dict(), tmp_path / "resnet50-0676ba61.pth")

    # torchvision's own layer4 stride, to compare with its features (the re-ID default 1 is in test_infer)
    loaded = load_checkpoint(path, last_stride=2)
    assert loaded.source == "torchvision"
    assert loaded.config == reid_config("resnet50", last_stride=2, **IMAGENET_HEAD)
    assert loaded.dropped == ("fc.bias", "fc.weight")
    trunk = torch.nn.Sequential(*list(reference.children())[:-1])
    torch.testing.assert_close(embed(loaded.model), embed(trunk).flatten(1), rtol=1e-5, atol=1e-5)


def test_ibn_net_se_resnet50_ibn_a(tmp_path: Path) -> None:
    cfg = reid_config("se_resnet50_ibn_a", **IMAGENET_HEAD)
    model = random_model(cfg)
    state = rename(model.state_dict(), [("backbone.", "")])
    state.update({"fc.weight": torch.randn(1000, 2048), "fc.bias": torch.randn(1000)})
    loaded = _load_and_compare(save(state, tmp_path / "se_resnet50_ibn_a.pth"), cfg, model)
    assert loaded.source == "ibn-net"


def test_ibn_net_ibn_b_safetensors(tmp_path: Path) -> None:
    cfg = reid_config("resnet18_ibn_b", **IMAGENET_HEAD)
    model = random_model(cfg)
    state = rename(model.state_dict(), [("backbone.", "")])
    loaded = _load_and_compare(save(state, tmp_path / "resnet18_ibn_b.safetensors"), cfg, model)
    assert loaded.source == "ibn-net"


def test_own_layout_without_manifest(tmp_path: Path) -> None:
    cfg = reid_config("resnet18", pooling="gem")
    model = random_model(cfg)
    loaded = _load_and_compare(save(dict(model.state_dict()), tmp_path / "ours.safetensors"), cfg, model)
    assert loaded.source == "reid"


def test_explicit_source_and_config(tmp_path: Path) -> None:
    cfg = reid_config("resnet18", backbone_overrides={"stem_pool": "ceil"}, neck_feat="before")
    model = random_model(cfg)
    path = save(dict(model.state_dict()), tmp_path / "ours.pth")
    _load_and_compare(path, cfg, model, source="reid", config=cfg)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\): backbone\.backbone\.bn1\.bias"):
        load_checkpoint(path, source="torchvision", config=cfg)  # the wrong remap prefixes every key again


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pth"):
        load_checkpoint(tmp_path / "nope.pth")


@pytest.fixture
def fastreid_file(tmp_path: Path) -> tuple[Path, ReIDConfig, torch.nn.Module]:
    cfg = reid_config("resnet18_ibn_a", backbone_overrides={"stem_pool": "ceil"})
    model = random_model(cfg)
    state = rename(model.state_dict(), [("backbone.", "backbone."), ("head.bnneck.", "heads.bottleneck.0.")])
    state["heads.weight"] = torch.randn(751, 512)
    return save({"model": state}, tmp_path / "model_final.pth"), cfg, model


def test_convert_then_load_uses_the_manifest(tmp_path: Path, fastreid_file) -> None:
    src, cfg, model = fastreid_file
    original = load_checkpoint(src)
    dst = tmp_path / "clean" / "market_r18.safetensors"
    dst.parent.mkdir()
    manifest = convert_checkpoint(src, dst)
    assert manifest == read_manifest(dst)
    assert (manifest.source, manifest.weights_file, manifest.fingerprint) == (
        "reid",
        dst.name,
        original.fingerprint,
    )
    assert "fast-reid" in manifest.notes
    assert "dropped 1 classifier key(s)" in manifest.notes

    converted = _load_and_compare(dst, cfg, model)
    assert converted.manifest == manifest
    assert converted.preprocess == original.preprocess == PreprocessConfig.fastreid()
    assert converted.fingerprint == original.fingerprint
    # Without the manifest the fast-reid stem pool and preprocessing are not knowable from our layout.
    inferred = load_checkpoint(dst, use_manifest=False)
    assert inferred.config.backbone.stem_pool == "pad"
    assert inferred.preprocess == PreprocessConfig.torchvision()


def test_manifest_sha_mismatch_is_refused(tmp_path: Path, fastreid_file) -> None:
    src, _, model = fastreid_file
    dst = convert_checkpoint(src, tmp_path / "clean.safetensors")
    state = dict(model.state_dict())
    state["backbone.conv1.weight"] = state["backbone.conv1.weight"] + 1
    save(state, tmp_path / dst.weights_file)
    with pytest.raises(CheckpointError, match="changed since its manifest was written"):
        load_checkpoint(tmp_path / dst.weights_file)


def test_explicit_arguments_beat_the_manifest(tmp_path: Path, fastreid_file) -> None:
    src, _, _ = fastreid_file
    dst = tmp_path / "clean.safetensors"
    convert_checkpoint(src, dst)
    loaded = load_checkpoint(dst, last_stride=2, input_size=(320, 160))
    assert loaded.config.backbone.strides == (1, 2, 2, 2)
    assert (loaded.preprocess.height, loaded.preprocess.width, loaded.preprocess.interpolation) == (
        320,
        160,
        "bicubic",
    )
    assert loaded.fingerprint != load_checkpoint(dst).fingerprint


def test_manifest_of_a_sibling_is_ignored(tmp_path: Path, fastreid_file, caplog) -> None:
    src, cfg, model = fastreid_file
    convert_checkpoint(
        src, tmp_path / "model_final.safetensors"
    )  # writes model_final.json beside model_final.pth
    with caplog.at_level(logging.WARNING):
        loaded = _load_and_compare(src, cfg, model)
    assert loaded.manifest is None
    assert loaded.source == "fast-reid"
    assert "describes model_final.safetensors" in caplog.text


def test_write_checkpoint_manifest_for_a_foreign_file(tmp_path: Path, fastreid_file) -> None:
    src, cfg, model = fastreid_file
    manifest = write_checkpoint_manifest(src, input_size=(384, 128), notes="market1501 bagtricks")
    assert (manifest.source, manifest.weights_file, manifest.notes) == (
        "fast-reid",
        src.name,
        "market1501 bagtricks",
    )
    assert manifest.preprocess.height == 384
    loaded = _load_and_compare(src, cfg, model)
    assert loaded.manifest == manifest
    assert loaded.preprocess.height == 384
    with pytest.raises(CheckpointError, match=r"already describes model_final\.pth"):
        convert_checkpoint(src, tmp_path / "model_final.safetensors")
    assert not (tmp_path / "model_final.safetensors").exists()


def test_convert_refuses_other_suffixes_and_overwriting_the_input(tmp_path: Path, fastreid_file) -> None:
    src, _, _ = fastreid_file
    with pytest.raises(CheckpointError, match=r"must end in \.safetensors"):
        convert_checkpoint(src, tmp_path / "out.pth")
    ours = convert_checkpoint(src, tmp_path / "out.safetensors")
    with pytest.raises(CheckpointError, match="overwrite the input"):
        convert_checkpoint(tmp_path / ours.weights_file, tmp_path / ours.weights_file)
