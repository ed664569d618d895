from __future__ import annotations

import argparse
import os
import sys
import types
from typing import Any

import pytest

from reid.cli import serve
from reid.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


@pytest.fixture
def fake_uvicorn(monkeypatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    module = types.ModuleType("uvicorn")
    module.run = lambda *args, **kwargs: calls.append((args, kwargs))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uvicorn", module)
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("REID_")})
    return calls


def test_flags_become_settings_for_every_worker(fake_uvicorn):
    args = parse(
        "--port",
        "9001",
        "--workers",
        "2",
        "--max-batch-size",
        "8",
        "--flip",
        "--weights",
        "",
        "--gallery-dir",
        "",
    )
    assert args.func(args) == 0
    (call_args, kwargs) = fake_uvicorn[0]
    assert call_args == ("app.main:create_app",)
    assert kwargs | {"log_level": None} == {
        "factory": True,
        "http": "app.server:NoDelayH11Protocol",
        "host": "127.0.0.1",
        "port": 9001,
        "workers": 2,
        "log_level": None,
    }
    assert (os.environ["REID_MAX_BATCH_SIZE"], os.environ["REID_FLIP"], os.environ["REID_WEIGHTS"]) == (
        "8",
        "true",
        "",
    )
    assert "REID_DEVICE" not in os.environ  # flags not given leave the environment alone


def test_bad_settings_fail_before_starting(fake_uvicorn):
    args = parse("--max-batch-size", "zero")
    with pytest.raises(ConfigError, match="max_batch_size"):
        args.func(args)
    assert not fake_uvicorn


def test_several_workers_cannot_share_a_gallery(fake_uvicorn):
    args = parse("--workers", "2", "--gallery-dir", "/tmp/some-gallery")
    with pytest.raises(ConfigError, match="gallery"):
        args.func(args)
    assert not fake_uvicorn


def test_several_workers_share_a_milvus_server_but_not_a_milvus_lite_file(fake_uvicorn):
    server = parse("--workers", "2", "--gallery-backend", "milvus", "--milvus-uri", "http://milvus:19530")
    assert server.func(server) == 0
    assert fake_uvicorn[0][1]["workers"] == 2
    local = parse("--workers", "2", "--gallery-backend", "milvus", "--milvus-uri", "/tmp/gallery.db")
    with pytest.raises(
        ConfigError, match=r"gallery\.db \(collection reid_gallery\) can be open in one process only"
    ):
        local.func(local)


def test_api_key_has_no_flag():
    with pytest.raises(SystemExit):
        parse("--api-key", "visible-in-ps")
