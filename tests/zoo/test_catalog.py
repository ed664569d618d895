"""The built-in zoo holds only what the loader rebuilds, with the publishers' facts; zoo files are
validated and extend it."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from reid.checkpoints import infer_config, remap
from reid.errors import ConfigError, UnknownWeights
from reid.models import ReIDModel, list_models, reid_config
from reid.zoo.catalog import builtin_zoo, get_entry, load_zoo, url_file_name
from tests.checkpoints.helpers import rename
from tests.zoo.helpers import FASTREID_RENAMES, write_zoo

FASTREID = re.compile(
    r"https://github\.com/JDAI-CV/fast-reid/releases/download/v0\.1\.1/"
    r"(market|duke|msmt)_(bot|agw|sbs)_(R50|R50-ibn|R101-ibn)\.pth"
)
IBN_NET = re.compile(
    r"https://github\.com/XingangPan/IBN-Net/releases/download/v1\.0/(\w+)-([0-9a-f]{8})\.pth"
)


def test_fastreid_entries_are_the_supported_recipes_and_backbones() -> None:
    zoo = builtin_zoo()
    fastreid = {name: e for name, e in zoo.items() if name.startswith("fastreid/")}
    assert len(fastreid) == 3 * 3 * 3  # datasets × BoT/AGW/SBS × R50/R50-ibn/R101-ibn: no S50, no MGN
    for name, entry in fastreid.items():
        match = FASTREID.fullmatch(entry.url)
        assert match, entry.url
        assert name == f"fastreid/{entry.file_name.removesuffix('.pth')}"
        recipe, backbone = match.group(2), match.group(3)
        assert entry.input_size == ((384, 128) if recipe == "sbs" else (256, 128))
        assert (
            entry.architecture
            == {"R50": "resnet50", "R50-ibn": "resnet50_ibn_a", "R101-ibn": "resnet101_ibn_a"}[backbone]
        )
        assert (entry.source, entry.neck_feat, entry.stem_pool) == ("fast-reid", "after", "pad")
        assert [key for key, _ in entry.metrics] == ["rank1", "mAP", "mINP"]


def test_published_figures_are_recorded() -> None:
    zoo = builtin_zoo()
    assert dict(zoo["fastreid/market_bot_R50"].metrics) == {"rank1": 94.4, "mAP": 86.1, "mINP": 59.4}
    assert dict(zoo["fastreid/market_sbs_R101-ibn"].metrics) == {"rank1": 96.3, "mAP": 90.3, "mINP": 70.0}
    assert (
        zoo["fastreid/market_agw_R50-ibn"].metrics_text() == "rank1 95.1, mAP 88.7, mINP 67.1 (Market-1501)"
    )
    assert zoo["ibn-net/resnet50_ibn_b"].metrics_text() == "-"
    assert (
        zoo["fastreid/duke_agw_R101-ibn"].metrics_text() == "rank1 91.7, mAP 82.3, mINP 50.0 (DukeMTMC-reID)"
    )
    assert zoo["ibn-net/resnet50_ibn_a"].metrics_text() == "top1_err 22.54, top5_err 6.32 (ImageNet val)"


def test_ibn_net_entries_check_the_hash_prefix_of_their_file_name() -> None:
    entries = [e for name, e in builtin_zoo().items() if name.startswith("ibn-net/")]
    assert {e.architecture for e in entries} >= {"resnet50_ibn_a", "resnet101_ibn_a", "se_resnet101_ibn_a"}
    for entry in entries:
        match = IBN_NET.fullmatch(entry.url)
        assert match, entry.url
        assert (entry.architecture, entry.sha256_prefix) == match.groups()
        assert entry.sha256 is None


def test_every_architecture_is_a_preset_and_no_full_hash_is_invented() -> None:
    for entry in builtin_zoo().values():
        assert entry.architecture in list_models()
        assert entry.sha256 is None  # neither project publishes one


def test_a_zoo_file_adds_and_overrides_entries(tmp_path: Path) -> None:
    path = write_zoo(
        tmp_path / "zoo.json",
        {
            "mine/tiny": {
                "family": "tiny-sbs",
                "url": "https://models.example/tiny.pth",
                "architecture": "resnet18",
            },
            "fastreid/market_bot_R50": {
                "family": "tiny-agw",
                "url": "https://models.example/bot.pth",
                "architecture": "resnet50",
            },
        },
    )
    zoo = load_zoo(path)
    assert zoo["mine/tiny"].input_size == (384, 128)
    assert zoo["fastreid/market_bot_R50"].url == "https://models.example/bot.pth"
    assert "fastreid/market_sbs_R50-ibn" in zoo


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            {
                "noslash": {
                    "url": "https://x/a",
                    "source": "reid",
                    "architecture": "resnet18",
                    "input_size": [1, 1],
                }
            },
            "namespace/name",
        ),
        (
            {
                "a/../b": {
                    "url": "https://x/a",
                    "source": "reid",
                    "architecture": "resnet18",
                    "input_size": [1, 1],
                }
            },
            "namespace/name",
        ),
        ({"a/b": {"family": "nope"}}, "unknown family"),
        (
            {
                "a/b": {
                    "url": "https://x/a",
                    "source": "caffe",
                    "architecture": "resnet18",
                    "input_size": [1, 1],
                }
            },
            "source",
        ),
        ({"a/b": {"family": "tiny-sbs", "url": "https://x/a", "architecture": "resnest50"}}, "resnest50"),
        (
            {"a/b": {"family": "tiny-sbs", "url": "https://x/a", "architecture": "resnet18", "colour": 1}},
            "colour",
        ),
        (
            {
                "a/b": {
                    "family": "tiny-sbs",
                    "url": "https://x/a",
                    "architecture": "resnet18",
                    "sha256": "abc",
                }
            },
            "sha256",
        ),
        ({"a/b": {"family": "tiny-sbs", "url": "ftp://x/a", "architecture": "resnet18"}}, "http"),
        (
            {
                "a/b": {
                    "family": "tiny-sbs",
                    "url": "https://x/a",
                    "architecture": "resnet18",
                    "neck_feat": "x",
                }
            },
            "neck_feat",
        ),
    ],
)
def test_invalid_zoo_files_are_refused_with_the_reason(tmp_path: Path, models: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_zoo(write_zoo(tmp_path / "zoo.json", models))


def test_unreadable_zoo_file(tmp_path: Path) -> None:
    (tmp_path / "zoo.json").write_text(json.dumps({"format_version": 2}))
    with pytest.raises(ConfigError, match="format_version 1"):
        load_zoo(tmp_path / "zoo.json")
    with pytest.raises(ConfigError, match="cannot read zoo file"):
        load_zoo(tmp_path / "missing.json")


def test_unknown_names_get_suggestions() -> None:
    with pytest.raises(UnknownWeights, match="did you mean fastreid/market_bot_R50-ibn"):
        get_entry(builtin_zoo(), "fastreid/market_bot_R50-ibm")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://h/a/b/model_final.pth?x=1", "model_final.pth"),
        ("https://h/", "weights.bin"),
        ("https://h/%2e%2e", "weights.bin"),
    ],
)
def test_cache_file_names_come_from_the_url_path(url: str, name: str) -> None:
    assert url_file_name(url) == name


# fast-reid v0.1.1's build_resnet_backbone: non-local units per stage with WITH_NL.
NON_LOCAL = {"resnet50": (0, 2, 3, 0), "resnet50_ibn_a": (0, 2, 3, 0), "resnet101_ibn_a": (0, 2, 9, 0)}


@pytest.mark.parametrize("name", sorted(n for n in builtin_zoo() if n.startswith("fastreid/market_")))
def test_the_listed_architecture_is_what_the_loader_reads_from_such_a_file(name: str) -> None:
    # The recipe's model in fast-reid's 2020 key layout (built on the meta device: only names and shapes).
    entry = builtin_zoo()[name]
    recipe = name.split("_")[1]
    cfg = reid_config(
        entry.architecture,
        backbone_overrides={"non_local": NON_LOCAL[entry.architecture] if recipe != "bot" else (0, 0, 0, 0)},
        pooling="avg" if recipe == "bot" else "gem",
    )
    with torch.device("meta"):
        state = ReIDModel(cfg).state_dict()
    state = rename(state, FASTREID_RENAMES)
    inferred = infer_config(remap(state, entry.source).state_dict, entry.source)
    assert inferred.backbone_name == entry.architecture
    config = entry.apply(inferred)
    assert config == dataclasses.replace(cfg, backbone=cfg.backbone.replace(stem_pool="pad"))
