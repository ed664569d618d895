"""Fixtures for the service tests (helpers live in ``tests.app.helpers``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from reid.engine import Extractor
from tests.app.helpers import gallery_settings, settings_for, wait_ready
from tests.helpers import tiny_extractor


@pytest.fixture(scope="session")
def extractor() -> Iterator[Extractor]:
    ex = tiny_extractor()
    yield ex
    ex.close()


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path, extractor: Extractor) -> Iterator[ClientFactory]:
    """``make_client(**settings)``: a started, ready TestClient over the session's tiny model."""
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            client = stack.enter_context(
                TestClient(create_app(settings_for(tmp_path, **overrides), extractor=extractor))
            )
            wait_ready(client)
            return client

        yield make


@pytest.fixture
def backend() -> str:
    """The gallery backend of ``client``; modules override it to run their tests on every backend."""
    return "faiss"


@pytest.fixture
def client(make_client: ClientFactory, backend: str, tmp_path: Path) -> TestClient:
    """A fresh service with an empty gallery on ``backend``."""
    if backend == "milvus":
        pytest.importorskip("pymilvus")
    return make_client(**gallery_settings(backend, tmp_path))


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory, extractor: Extractor) -> Iterator[TestClient]:
    """One service for a whole module, for tests that leave the gallery alone (errors, embeddings)."""
    app = create_app(settings_for(tmp_path_factory.mktemp("shared")), extractor=extractor)
    with TestClient(app) as client:
        wait_ready(client)
        yield client
