"""The model fingerprint: deterministic, and sensitive to exactly what changes an embedding."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from reid.checkpoints import load_checkpoint, model_fingerprint
from reid.models import reid_config
from reid.preprocess import PreprocessConfig
from tests.checkpoints.helpers import save
from tests.helpers import random_model

CFG = reid_config("resnet18")
PRE = PreprocessConfig.torchvision()


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in random_model(CFG).state_dict().items()}


def test_format_and_determinism(state: dict[str, torch.Tensor]) -> None:
    fingerprint = model_fingerprint(CFG, PRE, state)
    assert re.fullmatch(r"resnet18-[0-9a-f]{16}", fingerprint)
    copy = {k: v.clone() for k, v in reversed(list(state.items()))}  # order and storage do not matter
    assert model_fingerprint(CFG, PreprocessConfig.torchvision(), copy) == fingerprint


def test_one_changed_weight_changes_it(state: dict[str, torch.Tensor]) -> None:
    changed = dict(state)
    changed["backbone.layer3.1.conv2.weight"] = state["backbone.layer3.1.conv2.weight"].clone()
    changed["backbone.layer3.1.conv2.weight"][0, 0, 0, 0] += 1e-6
    assert model_fingerprint(CFG, PRE, changed) != model_fingerprint(CFG, PRE, state)


def test_dtype_changes_it(state: dict[str, torch.Tensor]) -> None:
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    assert model_fingerprint(CFG, PRE, half) != model_fingerprint(CFG, PRE, state)


@pytest.mark.parametrize(
    ("cfg", "pre"),
    [
        (CFG, dataclasses.replace(PRE, interpolation="bicubic")),
        (CFG, PreprocessConfig.torchvision(height=384)),
        (dataclasses.replace(CFG, neck_feat="before"), PRE),
        (dataclasses.replace(CFG, backbone=CFG.backbone.replace(stem_pool="ceil")), PRE),
    ],
    ids=["interpolation", "height", "neck_feat", "stem_pool"],
)
def test_config_and_preprocessing_change_it(state: dict[str, torch.Tensor], cfg, pre) -> None:
    assert model_fingerprint(cfg, pre, state) != model_fingerprint(CFG, PRE, state)


def test_classifier_and_decode_limit_do_not_change_it(state: dict[str, torch.Tensor]) -> None:
    with_classifier = {**state, "head.classifier.weight": torch.randn(751, 512)}
    cfg = dataclasses.replace(CFG, num_classes=751)
    pre = dataclasses.replace(PRE, max_pixels=1000)
    assert model_fingerprint(cfg, pre, with_classifier) == model_fingerprint(CFG, PRE, state)


def test_stable_across_saves_and_reloads(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    expected = model_fingerprint(CFG, PRE, state)
    for name in ("a.pth", "b.safetensors"):
        path = save(state, tmp_path / name)
        assert load_checkpoint(path).fingerprint == expected
