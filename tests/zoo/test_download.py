"""URL policy and single downloads from the loopback server: redirects, short transfers, HTTP errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reid.errors import DownloadError, InsecureURL
from reid.zoo.download import check_url, download
from tests.zoo.helpers import LoopbackServer

DATA = b"reid weights " * 1000


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/JDAI-CV/fast-reid/releases/download/v0.1.1/market_bot_R50.pth",
        "http://127.0.0.1:8000/w.pth",
        "http://127.8.9.10/w.pth",
        "http://localhost/w.pth",
        "http://[::1]:9/w.pth",
    ],
)
def test_https_anywhere_and_http_to_loopback_are_allowed(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/w.pth",
        "http://10.0.0.1/w.pth",
        "ftp://127.0.0.1/w.pth",
        "file:///etc/passwd",
        "https:///x",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(InsecureURL, match="only https"):
        check_url(url)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dl"
    folder.mkdir()
    return folder


def test_download_hashes_into_a_temporary_file(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["w.bin"] = DATA
    done = download(server.url("w.bin"), _folder(tmp_path), label="w.bin", progress=False)
    assert done.path.read_bytes() == DATA
    assert (done.sha256, done.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert done.path.parent == tmp_path / "dl"
    assert done.path.name.startswith(".download.")


def test_redirects_are_followed(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["w.bin"] = DATA
    done = download(server.url("w.bin", "redirect"), _folder(tmp_path), label="w", progress=False)
    assert done.path.read_bytes() == DATA
    assert (server.requests("w.bin", "redirect"), server.requests("w.bin")) == (1, 1)


def test_a_redirect_to_plain_http_elsewhere_is_refused(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["w.bin"] = DATA
    folder = _folder(tmp_path)
    with pytest.raises(InsecureURL, match=r"reid-test\.invalid"):
        download(server.url("w.bin", "elsewhere"), folder, label="w", progress=False)
    assert list(folder.iterdir()) == []


def test_a_short_transfer_is_an_error_and_leaves_nothing(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["w.bin"] = DATA
    folder = _folder(tmp_path)
    with pytest.raises(DownloadError, match=rf"cut short: got {len(DATA)} of {len(DATA) + 1000} bytes"):
        download(server.url("w.bin", "truncated"), folder, label="w", progress=False)
    assert list(folder.iterdir()) == []


def test_http_errors_and_unreachable_servers_are_download_errors(
    server: LoopbackServer, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("missing.bin"), folder, label="w", progress=False)
    with pytest.raises(DownloadError, match="REID_OFFLINE"):
        download("http://127.0.0.1:9/w.bin", folder, label="w", progress=False)  # discard port: refused
    assert list(folder.iterdir()) == []


def test_loopback_downloads_bypass_a_proxy_from_the_environment(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    server.files["w.bin"] = DATA
    assert download(server.url("w.bin"), _folder(tmp_path), label="w", progress=False).size == len(DATA)
