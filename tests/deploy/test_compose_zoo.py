"""docker-compose.zoo.yml: a zoo model pre-pulled into a named volume that the service and the indexer read
offline, on top of the GPU or the CPU files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from reid.cli import build_parser
from tests.deploy.files import COMPOSE, COMPOSE_CPU, COMPOSE_ZOO, load_compose
from tests.deploy.test_compose import compose_config, schema_check, settings_from

DEFAULT_MODEL = "fastreid/market_bot_R50-ibn"
ZOO = load_compose(COMPOSE_ZOO)


def test_file_follows_the_compose_specification(tmp_path: Path) -> None:
    result = schema_check(tmp_path, ZOO)
    assert result.returncode == 0, result.stdout + result.stderr


def _cache_volume(config: dict[str, Any], name: str) -> dict[str, Any]:
    (volume,) = [v for v in config["services"][name]["volumes"] if v["target"] == "/cache"]
    assert isinstance(volume, dict)
    return volume


@pytest.mark.parametrize(
    "files", [(COMPOSE, COMPOSE_ZOO), (COMPOSE, COMPOSE_CPU, COMPOSE_ZOO)], ids=["gpu", "cpu"]
)
def test_pull_fills_the_volume_the_service_and_indexer_read_offline(
    files: tuple[Path, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = compose_config(*files)
    services = config["services"]
    assert set(services) == {"reid", "indexer", "pull"}
    pull = services["pull"]
    args = build_parser().parse_args([*pull["entrypoint"][1:], *pull["command"]])
    assert (pull["entrypoint"][0], args.command, args.action, args.weights) == (
        "reid",
        "weights",
        "pull",
        DEFAULT_MODEL,
    )
    assert pull["environment"]["REID_HOME"] == "/cache"
    assert _cache_volume(config, "pull").get("read_only", False) is False
    for name in ("reid", "indexer"):
        volume = _cache_volume(config, name)
        assert (volume["type"], volume["source"], volume["read_only"]) == ("volume", "weights-cache", True)
        assert services[name]["environment"]["REID_HOME"] == "/cache"
        assert services[name]["environment"]["REID_OFFLINE"] == "true"
    assert _cache_volume(config, "pull")["source"] == "weights-cache"
    assert "weights-cache" in config["volumes"]
    indexer = build_parser().parse_args(["index", *services["indexer"]["command"], "--gallery", "/gallery"])
    assert indexer.weights == services["reid"]["environment"]["REID_WEIGHTS"] == DEFAULT_MODEL
    settings = settings_from(
        monkeypatch, {k: v for k, v in services["reid"]["environment"].items() if v is not None}
    )
    assert (settings.weights, settings.home, settings.offline) == (DEFAULT_MODEL, Path("/cache"), True)


def test_one_variable_picks_the_model_for_all_three() -> None:
    config = compose_config(COMPOSE, COMPOSE_ZOO, env={"REID_ZOO_MODEL": "fastreid/duke_sbs_R50-ibn"})
    services = config["services"]
    assert services["pull"]["command"] == ["fastreid/duke_sbs_R50-ibn"]
    assert services["reid"]["environment"]["REID_WEIGHTS"] == "fastreid/duke_sbs_R50-ibn"
    assert "fastreid/duke_sbs_R50-ibn" in services["indexer"]["command"]


def test_environment_names_are_settings_fields() -> None:
    for name in ("reid", "indexer", "pull"):
        for key in ZOO["services"][name].get("environment", {}):
            assert key.removeprefix("REID_").lower() in Settings.model_fields, key
