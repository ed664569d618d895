"""Key remapping and source detection on hand-written key sets (names from each framework's code)."""

from __future__ import annotations

import pytest
import torch

from reid.checkpoints import SOURCES, detect_source, remap
from reid.errors import CheckpointError


def _tensors(*keys: str) -> dict[str, torch.Tensor]:
    return {k: torch.full((2,), float(i)) for i, k in enumerate(keys)}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["backbone.conv1.weight", "heads.bottleneck.0.weight", "heads.weight"], "fast-reid"),
        (["backbone.conv1.weight", "pixel_mean", "pixel_std"], "fast-reid"),
        (["backbone.conv1.weight", "head.bnneck.weight"], "reid"),
        (["backbone.conv1.weight", "backbone.layer1.0.conv1.weight"], "reid"),
        (["base.conv1.weight", "bottleneck.weight", "classifier.weight"], "strong-baseline"),
        (["conv1.weight", "layer1.0.conv1.weight", "classifier.weight", "classifier.bias"], "torchreid"),
        (["conv1.weight", "bn1.running_mean", "layer1.0.bn1.IN.weight", "fc.weight"], "ibn-net"),
        (["conv1.weight", "bn1.weight", "bn1.bias", "layer1.2.IN.weight"], "ibn-net"),  # IBN-b
        (["conv1.weight", "bn1.weight", "bn1.running_mean", "fc.weight", "fc.bias"], "torchvision"),
    ],
)
def test_detect_source(keys: list[str], expected: str) -> None:
    assert detect_source(keys) == expected


def test_detect_source_unknown_lists_the_choices() -> None:
    with pytest.raises(CheckpointError, match="cannot tell") as info:
        detect_source(["encoder.weight"])
    assert all(name in str(info.value) for name in SOURCES)
    assert "encoder.weight" in str(info.value)


def test_unknown_source_name() -> None:
    with pytest.raises(CheckpointError, match="unknown checkpoint source 'caffe'"):
        remap({}, "caffe")


@pytest.mark.parametrize(
    ("bnneck", "classifier"),
    [
        ("heads.bnneck.", "heads.classifier.weight"),  # v0.1.1 / 2020 model zoo
        ("heads.bottleneck.0.", "heads.classifier.weight"),  # v1.0.0
        ("heads.bottleneck.0.", "heads.weight"),  # since 2021-03
    ],
)
def test_fastreid_head_eras(bnneck: str, classifier: str) -> None:
    bn = [bnneck + s for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    state = _tensors(
        "backbone.conv1.weight", "backbone.NL_2.0.g.weight", "heads.pool_layer.p", classifier, *bn
    )
    out = remap(state, "fast-reid")
    assert set(out.state_dict) == {
        "backbone.conv1.weight",
        "backbone.NL_2.0.g.weight",
        "head.pool.p",
        "head.classifier.weight",
        *(s.replace(bnneck, "head.bnneck.") for s in bn),
    }
    assert torch.equal(out.state_dict["head.classifier.weight"], state[classifier])
    assert torch.equal(out.state_dict["head.bnneck.running_var"], state[bnneck + "running_var"])
    assert out.pixel_mean is None
    assert out.dropped == ()


def test_fastreid_pixel_statistics_are_returned_not_loaded() -> None:
    state = {
        "backbone.conv1.weight": torch.zeros(1),
        "pixel_mean": torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1),
        "pixel_std": torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1),
    }
    out = remap(state, "fast-reid")
    assert set(out.state_dict) == {"backbone.conv1.weight"}
    assert out.dropped == ("pixel_mean", "pixel_std")
    assert out.pixel_mean == pytest.approx((123.675, 116.28, 103.53))
    assert out.pixel_std == pytest.approx((58.395, 57.12, 57.375))


def test_fastreid_embedding_conv_is_refused() -> None:
    state = {
        "heads.bottleneck.0.weight": torch.zeros(256, 2048, 1, 1),
        "heads.bottleneck.1.weight": torch.zeros(256),
    }
    with pytest.raises(CheckpointError, match="EMBEDDING_DIM"):
        remap(state, "fast-reid")


def test_strong_baseline_layout() -> None:
    state = _tensors(
        "base.conv1.weight",
        "base.layer1.0.bn1.IN.weight",
        "base.fc.weight",
        "base.fc.bias",
        "bottleneck.weight",
        "bottleneck.num_batches_tracked",
        "classifier.weight",
    )
    out = remap(state, "strong-baseline")
    assert set(out.state_dict) == {
        "backbone.conv1.weight",
        "backbone.layer1.0.bn1.IN.weight",
        "head.bnneck.weight",
        "head.bnneck.num_batches_tracked",
        "head.classifier.weight",
    }
    assert out.dropped == ("base.fc.bias", "base.fc.weight")


def test_strong_baseline_senet_is_refused() -> None:
    with pytest.raises(CheckpointError, match="SENet"):
        remap(_tensors("base.layer0.conv1.weight", "base.layer1.0.se_module.fc1.weight"), "strong-baseline")


def test_torchreid_layout() -> None:
    out = remap(
        _tensors("conv1.weight", "layer4.2.bn3.bias", "classifier.weight", "classifier.bias"), "torchreid"
    )
    assert set(out.state_dict) == {
        "backbone.conv1.weight",
        "backbone.layer4.2.bn3.bias",
        "head.classifier.weight",
        "head.classifier.bias",
    }


def test_torchreid_fc_embedding_is_refused() -> None:
    with pytest.raises(CheckpointError, match="fc512"):
        remap(_tensors("conv1.weight", "fc.0.weight", "fc.1.weight", "classifier.weight"), "torchreid")


@pytest.mark.parametrize("source", ["torchvision", "ibn-net"])
def test_imagenet_layout_drops_fc_and_legacy_in_statistics(source: str) -> None:
    state = _tensors(
        "conv1.weight", "layer1.0.bn1.IN.weight", "layer1.0.bn1.IN.running_mean", "fc.weight", "fc.bias"
    )
    out = remap(state, source)
    assert set(out.state_dict) == {"backbone.conv1.weight", "backbone.layer1.0.bn1.IN.weight"}
    assert out.dropped == ("fc.bias", "fc.weight", "layer1.0.bn1.IN.running_mean")


def test_reid_layout_is_unchanged() -> None:
    state = _tensors("backbone.conv1.weight", "head.bnneck.weight")
    assert remap(state, "reid").state_dict == state


def test_unknown_entries_pass_through_for_the_strict_load_to_name() -> None:
    out = remap(_tensors("backbone.conv1.weight", "heads.mystery.weight"), "fast-reid")
    assert "heads.mystery.weight" in out.state_dict
