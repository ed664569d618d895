"""The Dockerfile and .dockerignore: base, extras, stages, user, entrypoint, probe, volumes, build context."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tomllib
import torch

from app.settings import Settings
from reid.cli import build_parser
from tests.deploy.files import (
    COMPOSE,
    DOCKERIGNORE,
    ROOT,
    compose_default,
    dockerfile_instructions,
    exec_form,
    instruction_arguments,
    load_compose,
)

ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))


def build_arg_default(name: str) -> str:
    for arguments in instruction_arguments("ARG"):
        key, _, default = arguments.partition("=")
        if key == name:
            return default
    raise AssertionError(f"no ARG {name}")


def image_env() -> dict[str, str]:
    """The image's environment when built without arguments (``${ARG:-default}`` is ``default``)."""
    env: dict[str, str] = {}
    for arguments in instruction_arguments("ENV"):
        for pair in arguments.split():
            key, _, value = pair.partition("=")
            env[key] = compose_default(value) if key.startswith(ENV_PREFIX) else value
    return env


def healthcheck_command() -> list[str]:
    (arguments,) = instruction_arguments("HEALTHCHECK")
    options, _, command = arguments.partition(" CMD ")
    assert options.startswith("--"), arguments
    return exec_form(command)


def test_default_base_is_the_cuda_release_of_the_torch_wheel() -> None:
    base = build_arg_default("BASE_IMAGE")
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-[a-z-]+-ubuntu\d\d\.\d\d", base)
    assert match, base
    if torch.version.cuda is None:
        pytest.skip("this torch is a CPU build: the CUDA release of PyPI's wheel is unknown here")
    assert f"{match.group(1)}.{match.group(2)}" == torch.version.cuda


def test_variants_are_extras_of_the_package() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert build_arg_default("VARIANT") == "gpu"
    (install,) = [run for run in instruction_arguments("RUN") if "pip install" in run]
    variants = set(re.findall(r"\b(\w+)\) extra_index=", install))
    assert variants == {"gpu", "cpu"}
    assert variants <= set(extras)
    assert any(name.startswith("faiss-gpu") for name in extras["gpu"])
    assert any(name.startswith("faiss-cpu") for name in extras["cpu"])
    assert '".[${VARIANT},${runtime_extra},milvus]"' in install
    # Each image carries the accelerated runtime of its hardware.
    runtimes = dict(re.findall(r"\b(\w+)\) extra_index=[^;]*; runtime_extra=\"(\w+)\"", install))
    assert runtimes == {"gpu": "tensorrt", "cpu": "openvino"}
    assert {"tensorrt", "openvino", "onnx"} <= set(extras)


def test_build_is_multi_stage_and_runtime_copies_the_environment() -> None:
    stages = [arguments.split() for name, arguments in dockerfile_instructions() if name == "FROM"]
    assert [stage[-1] for stage in stages] == ["python", "builder", "runtime"]
    assert stages[0][0] == "${BASE_IMAGE}"
    assert "--from=builder /opt/venv /opt/venv" in instruction_arguments("COPY")
    assert image_env()["PATH"].startswith("/opt/venv/bin:")


def test_runtime_runs_as_an_unprivileged_user() -> None:
    user = instruction_arguments("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user
    assert gid.isdigit(), user
    assert int(uid) > 0
    assert int(gid) > 0
    (useradd,) = [run for run in instruction_arguments("RUN") if "useradd" in run]
    assert f"--uid {uid}" in useradd


def test_entrypoint_serves_on_the_exposed_port() -> None:
    (entrypoint,) = instruction_arguments("ENTRYPOINT")
    command = exec_form(entrypoint)
    assert command[0] == "reid"
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve"
    assert args.host == "0.0.0.0"
    assert instruction_arguments("EXPOSE") == [str(args.port)]
    reid = load_compose(COMPOSE)["services"]["reid"]
    assert [str(p).rsplit(":", 1)[-1] for p in reid["ports"]] == [str(args.port)]


def test_healthcheck_is_the_compose_one() -> None:
    reid = load_compose(COMPOSE)["services"]["reid"]
    assert healthcheck_command() == reid["healthcheck"]["test"][1:]
    assert reid["healthcheck"]["test"][0] == "CMD"


def test_volumes_are_where_the_settings_look() -> None:
    env = image_env()
    settings_env = {key: value for key, value in env.items() if key.startswith(ENV_PREFIX)}
    for key in settings_env:
        assert key[len(ENV_PREFIX) :].lower() in Settings.model_fields, key
    (volumes,) = instruction_arguments("VOLUME")
    assert set(exec_form(volumes)) == {settings_env["REID_WEIGHTS"], settings_env["REID_GALLERY_DIR"]}


def test_build_context_is_the_package_sources_only() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything else is excluded: weights, galleries, .venv, data
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied: set[str] = set()
    for arguments in instruction_arguments("COPY"):
        if not arguments.startswith("--from="):
            copied.update(arguments.split()[:-1])
    assert copied == allowed
    assert {"weights", ".venv"}.isdisjoint(allowed)


class _Status(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(status: int) -> Iterator[int]:
    handler = type("Handler", (_Status,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def probe(port: int) -> int:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    code = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_exit_status_follows_readiness(status: int, healthy: bool) -> None:
    with serving(status) as port:
        assert (probe(port) == 0) is healthy


def test_healthcheck_fails_when_nothing_listens() -> None:
    with serving(200) as port:
        pass
    assert probe(port) != 0


def test_a_weights_build_argument_pulls_a_zoo_model_and_serves_it() -> None:
    assert build_arg_default("WEIGHTS") == ""
    (env,) = [arguments for arguments in instruction_arguments("ENV") if "REID_WEIGHTS=" in arguments]
    assert "REID_WEIGHTS=${WEIGHTS:-/weights}" in env.split()
    assert image_env()["REID_HOME"] == "/cache"
    (pull,) = [run for run in instruction_arguments("RUN") if "weights pull" in run]
    command = pull.split("then ", 1)[1].split(";", 1)[0].replace('"', "").split()
    args = build_parser().parse_args(command[1:])
    assert (command[0], args.command, args.action, args.weights) == ("reid", "weights", "pull", "${WEIGHTS}")
    # Pulled as the service's user, into a folder it owns, after the environment that names the cache.
    instructions = dockerfile_instructions()
    order = [
        i for i, (name, arguments) in enumerate(instructions) if name == "USER" or "weights pull" in arguments
    ]
    assert instructions[order[0]][0] == "USER"
    (useradd,) = [run for run in instruction_arguments("RUN") if "useradd" in run]
    assert "chown reid:reid /gallery /cache" in useradd
