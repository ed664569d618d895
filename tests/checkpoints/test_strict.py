"""Strict loading: everything matches, or the error names what does not."""

from __future__ import annotations

import re

import pytest
import torch

from reid.checkpoints import load_into
from reid.errors import CheckpointError
from reid.models import ReIDModel, reid_config
from tests.checkpoints.helpers import embed
from tests.helpers import assert_same_outputs, random_model

CFG = reid_config("resnet18")


@pytest.fixture(scope="module")
def source() -> ReIDModel:
    return random_model(CFG)


def _state(model: ReIDModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_exact_state_dict_loads_and_reproduces_outputs(source: ReIDModel) -> None:
    target = ReIDModel(CFG).eval()
    assert not torch.equal(embed(target), embed(source))
    report = load_into(target, _state(source))
    assert report.loaded == len(source.state_dict())
    assert (report.dropped_classifier, report.filled) == ((), ())
    assert_same_outputs(embed(target), embed(source))


def test_missing_key_is_named(source: ReIDModel) -> None:
    state = _state(source)
    del state["backbone.layer2.1.conv2.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): backbone\.layer2\.1\.conv2\.weight"):
        load_into(ReIDModel(CFG), state, what="ckpt.pth")


def test_unexpected_key_is_named(source: ReIDModel) -> None:
    state = {**_state(source), "backbone.layer5.0.conv1.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): backbone\.layer5\.0\.conv1\.weight"):
        load_into(ReIDModel(CFG), state)


def test_shape_mismatch_names_key_and_both_shapes(source: ReIDModel) -> None:
    state = {**_state(source), "head.bnneck.running_mean": torch.zeros(2048)}
    expected = "head.bnneck.running_mean: checkpoint (2048,) vs model (512,)"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        load_into(ReIDModel(CFG), state)


def test_all_problems_reported_together_and_long_lists_truncated(source: ReIDModel) -> None:
    state = _state(source)
    removed = sorted(
        k for k in state if k.startswith("backbone.layer3.") and not k.endswith("num_batches_tracked")
    )
    for key in removed:
        del state[key]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_into(ReIDModel(CFG), state)
    message = str(info.value)
    assert f"{len(removed)} missing key(s): " + ", ".join(removed[:10]) in message
    assert f"(and {len(removed) - 10} more)" in message
    assert "1 unexpected key(s): extra.weight" in message


def test_nothing_is_copied_when_the_load_fails(source: ReIDModel) -> None:
    target = ReIDModel(CFG)
    before = target.backbone.conv1.weight.clone()
    state = _state(source)
    del state["head.bnneck.weight"]
    with pytest.raises(CheckpointError):
        load_into(target, state)
    assert torch.equal(target.backbone.conv1.weight, before)


def test_missing_batch_counters_are_filled(source: ReIDModel) -> None:
    state = {k: v for k, v in _state(source).items() if not k.endswith("num_batches_tracked")}
    target = ReIDModel(CFG).eval()
    report = load_into(target, state)
    assert report.filled
    assert all(k.endswith("num_batches_tracked") for k in report.filled)
    assert_same_outputs(embed(target), embed(source))


def test_classifier_dropped_when_the_model_has_none(source: ReIDModel) -> None:
    state = {
        **_state(source),
        "head.classifier.weight": torch.zeros(751, 512),
        "head.classifier.bias": torch.zeros(751),
    }
    report = load_into(ReIDModel(CFG), state)
    assert report.dropped_classifier == ("head.classifier.bias", "head.classifier.weight")


def test_classifier_kept_when_the_model_has_one(source: ReIDModel) -> None:
    cfg = reid_config("resnet18", num_classes=7)
    weight = torch.randn(7, 512)
    target = ReIDModel(cfg)
    load_into(target, {**_state(source), "head.classifier.weight": weight})
    assert target.head.classifier is not None
    assert torch.equal(target.head.classifier.weight, weight)
    with pytest.raises(CheckpointError, match=re.escape("checkpoint (751, 512) vs model (7, 512)")):
        load_into(ReIDModel(cfg), {**_state(source), "head.classifier.weight": torch.zeros(751, 512)})


def test_classifier_missing_from_the_file_keeps_its_initial_values(source: ReIDModel) -> None:
    target = ReIDModel(reid_config("resnet18", num_classes=7))
    report = load_into(target, _state(source))
    assert report.filled == ("head.classifier.weight",)
