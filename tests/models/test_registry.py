"""Presets: every name builds, counts its parameters exactly, round-trips state_dict, rejects bad input."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from reid.errors import ConfigError, UnknownModel
from reid.models import create_model, get_config, list_models
from reid.models.resnet import ResNet

# Published counts: torchvision (1000 classes) and Keras applications (1000 classes, BN moving mean and
# variance included because Keras reports them as non-trainable parameters).
TORCHVISION_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
KERAS_COUNTS = {
    "resnet50v2": 25_613_800,
    "resnet101v2": 44_675_560,
    "resnet152v2": 60_380_648,
}
REQUIRED = {
    *TORCHVISION_COUNTS,
    *KERAS_COUNTS,
    "se_resnet50",
    "se_resnet101",
    "se_resnet152",
    "resnet50_ibn_a",
    "resnet101_ibn_a",
    "resnet50_ibn_b",
    "se_resnet50_ibn_a",
    "se_resnet101_ibn_a",
    "se_resnet152_ibn_a",
}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_keras(model: torch.nn.Module) -> int:
    """Keras's count: trainable weights plus BN moving mean/variance (not PyTorch's num_batches_tracked)."""
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return count_params(model) + stats


def base_name(name: str) -> str:
    return name.replace("se_", "").replace("_ibn_a", "").replace("_ibn_b", "")


def expected_count(name: str) -> int:
    """Independent arithmetic for the SE / IBN variants on top of the torchvision count."""
    if name in KERAS_COUNTS:
        return KERAS_COUNTS[name]
    cfg = get_config(name)
    total = TORCHVISION_COUNTS[base_name(name)]
    channels = [c * cfg.expansion for c in (64, 128, 256, 512)]
    if cfg.se:  # two bias-free Linear layers C→C/16→C in every unit
        total += sum(n * 2 * c * (c // 16) for n, c in zip(cfg.layers, channels, strict=True))
    if cfg.ibn == "b":  # affine IN(C) after the add in the last unit of layer1 and layer2
        total += 2 * channels[0] + 2 * channels[1]
    # IBN-a splits a BN into IN+BN with the same number of affine parameters: no change.
    return total


def test_required_presets_are_registered() -> None:
    assert set(list_models()) >= REQUIRED


@pytest.mark.parametrize("name", list_models())
def test_builds_counts_exactly_and_round_trips_state_dict(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    counted = count_keras(model) if name in KERAS_COUNTS else count_params(model)
    assert counted == expected_count(name)

    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p))
    other.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), other(x), rtol=1e-6, atol=1e-6)


def test_default_product_backbone_c5_shape() -> None:
    model = create_model("se_resnet50_ibn_a", last_stride=1, num_classes=0).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 256, 128))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, 2048, 16, 8)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownModel, match="resnet50") as info:
        create_model("resnet51")
    assert isinstance(info.value, ValueError)
    for name in REQUIRED:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ibn": "c"}, "ibn"),
        ({"last_stride": 3}, "stride"),
        ({"stride_placement": "middle"}, "stride_placement"),
        ({"se_form": "mlp"}, "se_form"),
        ({"num_classes": -1}, "num_classes"),
        ({"non_local": (0, 5, 0, 0)}, "non_local"),
        ({"layers": (3, 4, 6)}, "layers"),
        ({"colour": "red"}, "unknown model option"),
    ],
)
def test_impossible_overrides_fail_at_construction(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model("resnet50", **overrides)


def test_ibn_refused_for_preactivation() -> None:
    with pytest.raises(ConfigError, match="IBN"):
        create_model("resnet50v2", ibn="a")


@pytest.mark.parametrize(
    ("overrides", "present", "absent"),
    [
        ({"se": True}, "layer4.0.se.fc.0.weight", "layer4.0.se.fc1.weight"),
        ({"se": True, "se_form": "conv"}, "layer4.0.se.fc1.bias", "layer4.0.se.fc.0.weight"),
        ({"ibn": "a"}, "layer3.5.bn1.IN.weight", "layer4.0.bn1.IN.weight"),
        ({"ibn": "b"}, "layer2.3.IN.weight", "layer2.2.IN.weight"),
        ({"num_classes": 0}, "layer4.2.bn3.weight", "fc.weight"),
        ({"non_local": (0, 2, 3, 0)}, "NL_3.2.W.1.running_mean", "NL_1.0.g.weight"),
    ],
)
def test_overrides_change_the_checkpoint_layout(overrides: dict[str, Any], present: str, absent: str) -> None:
    keys = create_model("resnet50", **overrides).state_dict().keys()
    assert present in keys
    assert absent not in keys


def test_ibn_b_replaces_stem_bn_with_instance_norm() -> None:
    model = create_model("resnet50_ibn_b")
    assert isinstance(model.bn1, torch.nn.InstanceNorm2d)
    assert model.bn1.affine
    assert "bn1.running_mean" not in model.state_dict()


def test_config_round_trips_through_dict() -> None:
    cfg = get_config("se_resnet50_ibn_a", last_stride=1, non_local=(0, 2, 3, 0))
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    assert cfg.last_stride == 1
    assert isinstance(ResNet(cfg), ResNet)
