"""Config inference from key names and shapes, and each source's documented defaults."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reid.checkpoints import default_preprocess, infer_config
from reid.errors import CheckpointError
from reid.models import ReIDConfig, ReIDModel, ResNetConfig, reid_config
from reid.preprocess import PreprocessConfig


def _state(cfg: ReIDConfig) -> dict[str, torch.Tensor]:
    with torch.device("meta"):  # shapes only: inference never reads values
        return ReIDModel(cfg).state_dict()


@pytest.mark.parametrize(
    "cfg",
    [
        reid_config("resnet18"),
        reid_config("resnet34_ibn_a", pooling="gem"),
        reid_config("resnet50_ibn_b", bnneck=False, neck_feat="before"),
        reid_config("se_resnet50", backbone_overrides={"se_form": "conv", "se_reduction": 8}),
        reid_config("se_resnet101_ibn_a", backbone_overrides={"non_local": (0, 2, 9, 0)}, pooling="gem"),
        reid_config("resnet50v2"),
        reid_config("resnet152"),
        ReIDConfig(
            backbone=ResNetConfig(
                layers=(1, 1, 2, 1), ibn="a", num_classes=0, strides=(1, 2, 2, 1), in_chans=1
            ),
            backbone_name="custom",
        ),
    ],
    ids=lambda cfg: cfg.backbone_name,
)
def test_infer_config_rebuilds_our_own_configs(cfg: ReIDConfig) -> None:
    # neck_feat="before" with a BNNeck is a test-time choice the weights cannot show: manifests carry it.
    assert infer_config(_state(cfg), "reid") == cfg


def test_fastreid_defaults() -> None:
    state = _state(reid_config("resnet50_ibn_a"))
    cfg = infer_config(state, "fast-reid")
    assert cfg.backbone.stem_pool == "ceil"
    assert cfg.backbone.last_stride == 1
    assert cfg == reid_config("resnet50_ibn_a", backbone_overrides={"stem_pool": "ceil"})


def test_strong_baseline_plain_resnet_has_no_stem_relu_but_its_ibn_model_has() -> None:
    plain = infer_config(_state(reid_config("resnet50")), "strong-baseline")
    ibn = infer_config(_state(reid_config("resnet50_ibn_a")), "strong-baseline")
    assert plain.backbone.stem_relu is False
    assert ibn.backbone.stem_relu is True


def test_last_stride_defaults_per_source_and_override() -> None:
    state = _state(reid_config("resnet18", bnneck=False, neck_feat="before"))
    assert infer_config(state, "torchreid").backbone.strides == (1, 2, 2, 2)
    assert infer_config(state, "torchvision").backbone.strides == (1, 2, 2, 1)
    assert infer_config(state, "torchvision", last_stride=2).backbone.last_stride == 2


def test_imagenet_backbone_has_no_bnneck() -> None:
    state = {k: v for k, v in _state(reid_config("resnet18")).items() if k.startswith("backbone.")}
    cfg = infer_config(state, "torchvision")
    assert (cfg.bnneck, cfg.neck_feat, cfg.pooling) == (False, "before", "avg")


def test_not_a_resnet() -> None:
    with pytest.raises(CheckpointError, match=r"no backbone\.conv1 weights when read as a reid checkpoint"):
        infer_config({"backbone.encoder.weight": torch.zeros(1)}, "reid")
    state = {k: v for k, v in _state(reid_config("resnet18")).items() if not k.startswith("backbone.layer3.")}
    with pytest.raises(CheckpointError, match=r"backbone\.layer3\."):
        infer_config(state, "reid")


def test_default_preprocess_by_source() -> None:
    sbs = reid_config("resnet50_ibn_a", backbone_overrides={"non_local": (0, 2, 3, 0)}, pooling="gem")
    plain = reid_config("resnet50")
    assert default_preprocess("fast-reid", sbs) == PreprocessConfig.fastreid(height=384, width=128)
    assert default_preprocess("fast-reid", plain) == PreprocessConfig.fastreid()
    assert default_preprocess("strong-baseline", sbs) == PreprocessConfig.torchvision()
    assert default_preprocess("torchreid", plain, input_size=(320, 160)) == PreprocessConfig.torchvision(
        height=320, width=160
    )


def test_default_preprocess_uses_stored_pixel_statistics() -> None:
    pre = default_preprocess(
        "fast-reid", reid_config("resnet50"), pixel_mean=(120.0, 110.0, 100.0), pixel_std=(50.0, 55.0, 60.0)
    )
    assert (pre.mean, pre.std) == ((120.0, 110.0, 100.0), (50.0, 55.0, 60.0))
    reference = PreprocessConfig.fastreid()
    assert dataclasses.replace(pre, mean=reference.mean, std=reference.std) == reference


@pytest.mark.parametrize("width", ["one", "half"])
def test_non_local_width_is_read_from_the_weights(width: str) -> None:
    overrides = {"non_local": (0, 2, 3, 0), "non_local_width": width}
    cfg = reid_config("resnet50_ibn_a", backbone_overrides=overrides, pooling="gem")
    inferred = infer_config(_state(cfg), "reid")
    assert inferred.backbone.non_local_width == width
    assert inferred.backbone.non_local == (0, 2, 3, 0)
