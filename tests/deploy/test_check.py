"""deploy/check.sh, the CI lint of the deployment files: passes on the repository, fails on broken files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.files import CHECK_SCRIPT, COMPOSE, COMPOSE_CPU, COMPOSE_ZOO, DOCKERFILE


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    # The tools come from this interpreter's environment, wherever the files are.
    venv = Path(sys.executable).parents[1]
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "VENV": str(venv)}
    return subprocess.run(
        ["bash", str(root / "deploy" / "check.sh")], capture_output=True, text=True, env=env, timeout=300
    )


def copy_of_the_files(tmp_path: Path) -> Path:
    for path in (DOCKERFILE, COMPOSE, COMPOSE_CPU, COMPOSE_ZOO):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "deploy").mkdir()
    shutil.copy(CHECK_SCRIPT, tmp_path / "deploy" / "check.sh")
    return tmp_path


def test_repository_files_pass(tmp_path: Path) -> None:
    result = run_check(copy_of_the_files(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("deployment files: ok")


@pytest.mark.parametrize(
    ("name", "old", "new", "message"),
    [
        ("Dockerfile", "WORKDIR /src", "RUN cd /src", "DL3003"),
        ("docker-compose.yml", "restart: unless-stopped", "restart: unless-stopped\n    gpus_: all", "gpus_"),
        ("docker-compose.zoo.yml", 'restart: "no"', 'restart: "no"\n    gpus_: all', "gpus_"),
    ],
    ids=["hadolint", "compose-schema", "zoo-schema"],
)
def test_broken_files_fail(tmp_path: Path, name: str, old: str, new: str, message: str) -> None:
    root = copy_of_the_files(tmp_path)
    text = (root / name).read_text()
    assert old in text
    (root / name).write_text(text.replace(old, new, 1))
    result = run_check(root)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
