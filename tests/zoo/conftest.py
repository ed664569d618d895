"""Fixtures for the zoo tests: a loopback server, the tiny checkpoint's bytes, an isolated cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.zoo.helpers import LoopbackServer, fastreid_checkpoint


@pytest.fixture(scope="session")
def checkpoint_bytes() -> bytes:
    return fastreid_checkpoint()


@pytest.fixture
def server(checkpoint_bytes: bytes) -> Iterator[LoopbackServer]:
    loopback = LoopbackServer()
    loopback.files["model.pth"] = checkpoint_bytes
    with loopback.running():
        yield loopback


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own REID_HOME and starts online with the built-in zoo only."""
    home = tmp_path / "reid-home"
    monkeypatch.setenv("REID_HOME", str(home))
    monkeypatch.delenv("REID_OFFLINE", raising=False)
    monkeypatch.delenv("REID_ZOO_FILE", raising=False)
    return home
