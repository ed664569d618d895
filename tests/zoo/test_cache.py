"""The cache: verified placement, trust on first use, offline mode, and one download for concurrent
processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reid.errors import HashMismatch, OfflineMissing
from reid.zoo.cache import Expected, ensure_file, folder_lock, read_record, url_dir
from tests.zoo.helpers import LoopbackServer

DATA = b"reid weights " * 1000
SHA = hashlib.sha256(DATA).hexdigest()
ROOT = Path(__file__).resolve().parents[2]
ANY_HASH = Expected()


def _ensure(server: LoopbackServer, path: Path, expected: Expected = ANY_HASH, offline: bool = False) -> str:
    with folder_lock(path.parent, "w"):
        return ensure_file(
            server.url("w.bin"), path, expected=expected, offline=offline, what="test/w", progress=False
        )


def test_first_download_is_placed_and_recorded(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["w.bin"] = DATA
    path = tmp_path / "cache" / "w.bin"
    assert _ensure(server, path) == SHA
    assert path.read_bytes() == DATA
    assert read_record(path) == SHA
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "w.bin", "w.bin.sha256"]
    assert _ensure(server, path) == SHA  # cached: verified, not fetched again
    assert server.requests("w.bin") == 1


def test_a_download_killed_midway_leaves_nothing_behind_for_long(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.files["w.bin"] = DATA
    path = tmp_path / "cache" / "w.bin"
    path.parent.mkdir(parents=True)
    (path.parent / ".download.abc123.part").write_bytes(DATA[:10])
    _ensure(server, path)
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "w.bin", "w.bin.sha256"]


def test_published_hash_and_prefix_are_checked_before_placing(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["w.bin"] = DATA
    path = tmp_path / "cache" / "w.bin"
    wrong = "0" * 64
    with pytest.raises(HashMismatch) as caught:
        _ensure(server, path, Expected(sha256=wrong))
    assert SHA in str(caught.value)
    assert wrong in str(caught.value)
    assert (caught.value.expected, caught.value.actual) == (wrong, SHA)
    with pytest.raises(HashMismatch, match="prefix 00000000"):
        _ensure(server, path, Expected(prefix="00000000"))
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock"]  # no file, no temporary left
    assert _ensure(server, path, Expected(sha256=SHA, prefix=SHA[:8])) == SHA


def test_a_changed_cached_file_fails_against_the_first_download(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.files["w.bin"] = DATA
    path = tmp_path / "cache" / "w.bin"
    _ensure(server, path)
    path.write_bytes(DATA + b"!")
    changed = hashlib.sha256(DATA + b"!").hexdigest()
    with pytest.raises(HashMismatch, match=rf"sha256 {changed} differs from {SHA}.*first downloaded"):
        _ensure(server, path)


def test_a_new_download_must_match_the_first_one(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["w.bin"] = DATA
    path = tmp_path / "cache" / "w.bin"
    _ensure(server, path)
    path.unlink()
    server.files["w.bin"] = DATA + b"changed upstream"
    with pytest.raises(HashMismatch, match=f"differs from {SHA}"):
        _ensure(server, path)
    assert not path.exists()


def test_offline_uses_the_cache_and_names_what_is_missing(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["w.bin"] = DATA
    path = tmp_path / "cache" / "w.bin"
    with pytest.raises(OfflineMissing, match=r"test/w is not in the weights cache .*REID_OFFLINE"):
        _ensure(server, path, offline=True)
    assert server.requests("w.bin") == 0
    _ensure(server, path)
    assert _ensure(server, path, offline=True) == SHA
    assert server.requests("w.bin") == 1


def _wait_for(condition: object, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_concurrent_pulls_by_two_processes_download_once(
    server: LoopbackServer, isolated_cache: Path, tmp_path: Path
) -> None:
    url = server.url("model.pth")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REID_HOME": str(isolated_cache)}
    command = [sys.executable, "-m", "reid", "weights", "pull", url]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    server.hold.clear()  # the first download stalls, holding the lock, until the second one waits
    with logs[0].open("w") as first_log, logs[1].open("w") as second_log:
        first = subprocess.Popen(command, env=env, stdout=first_log, stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: server.requests("model.pth") == 1, "the first download to start")
            second = subprocess.Popen(command, env=env, stdout=second_log, stderr=subprocess.STDOUT)
            try:
                _wait_for(lambda: "waiting for another process" in logs[1].read_text(), "the second to wait")
                server.hold.set()
                assert second.wait(timeout=300) == 0, logs[1].read_text()
            finally:
                second.kill()
            assert first.wait(timeout=300) == 0, logs[0].read_text()
        finally:
            first.kill()
    assert server.requests("model.pth") == 1
    cached = url_dir(isolated_cache, url) / "model.pth"
    assert cached.read_bytes() == server.files["model.pth"]
    for log in logs:
        assert str(cached) in log.read_text()
