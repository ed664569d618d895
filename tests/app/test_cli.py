from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import cli as serve
from app.main import EXIT_START_FAILED
from reid.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


@pytest.fixture
def fake_uvicorn(monkeypatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(serve.uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
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
    assert call_args == ("app.main:serve_app",)
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(cwd: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    """``reid serve`` as a user starts it, in ``cwd``, with no REID_* variables; returns it and its URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REID_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "reid", "serve", "--port", str(port), "--max-batch-size", "2", *flags],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def _exits(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    try:
        _, stderr = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, stderr


def test_serve_in_a_folder_without_weights_becomes_ready_on_random_weights(tmp_path):
    process, url = _serve(tmp_path)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "never became ready"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            time.sleep(0.5)
        info = httpx.get(f"{url}/info", timeout=5).json()
        assert info["preprocessing"]["input_size"] == [256, 128]
    finally:
        process.terminate()
        _, stderr = _exits(process)
    assert "RANDOMLY INITIALISED" in stderr


def test_serve_with_a_broken_checkpoint_exits_naming_the_file(tmp_path):
    (tmp_path / "broken.safetensors").write_bytes(b"not a checkpoint")
    process, _ = _serve(tmp_path, "--weights", "broken.safetensors")
    code, stderr = _exits(process)
    assert code == EXIT_START_FAILED
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: start-up failed while loading weights broken.safetensors"), stderr


def test_serve_with_an_unusable_gallery_exits_naming_it(tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the gallery folder should be")
    process, _ = _serve(tmp_path, "--gallery-dir", "not-a-folder")
    code, stderr = _exits(process)
    assert code == EXIT_START_FAILED
    assert "error: start-up failed while opening gallery" in stderr
    assert "not-a-folder" in stderr.strip().splitlines()[-1]


def test_an_explicit_weights_path_that_does_not_exist_stays_an_error(tmp_path):
    process, _ = _serve(tmp_path, "--weights", "weights")
    code, stderr = _exits(process)
    assert code == EXIT_START_FAILED
    assert "weights path weights does not exist" in stderr
