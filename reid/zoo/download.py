"""One HTTP(S) download into a temporary file, hashed on the way: https anywhere, plain http to loopback
only, redirects followed under the same rule, a transfer shorter than its Content-Length refused."""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from tqdm import tqdm

from reid.errors import DownloadError, InsecureURL

logger = logging.getLogger(__name__)

TIMEOUT_S = 60.0  # per socket operation, not for the whole transfer
_CHUNK = 1 << 20
USER_AGENT = "reid-weights"
TEMP_PREFIX = ".download."


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    """Raise :class:`InsecureURL` unless ``url`` is https, or http to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return
    raise InsecureURL(
        f"refusing to download weights from {url!r}: only https URLs are allowed "
        "(plain http only to loopback addresses)"
    )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects (release assets redirect to a storage host), each target checked like the first."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_url(newurl)
        logger.debug("redirected (%d) to %s", code, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass(frozen=True)
class Downloaded:
    """A complete transfer in a temporary file beside its destination (the caller renames or deletes it)."""

    path: Path
    sha256: str
    size: int


def download(url: str, folder: Path, *, label: str, progress: bool = True) -> Downloaded:
    """GET ``url`` into a new temporary file in ``folder``, fsynced; raises :class:`DownloadError`."""
    check_url(url)
    # A loopback URL never goes through a proxy from the environment.
    direct = [urllib.request.ProxyHandler({})] if is_loopback(urlsplit(url).hostname or "") else []
    opener = urllib.request.build_opener(_CheckedRedirects, *direct)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=".part")
    path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out, opener.open(request, timeout=TIMEOUT_S) as response:
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header and length_header.isdigit() else None
            digest = hashlib.sha256()
            size = 0
            with tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                disable=not progress,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            if expected is not None and size != expected:
                raise DownloadError(
                    f"download of {url} was cut short: got {size} of {expected} bytes; try again"
                )
            out.flush()
            os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        path.unlink(missing_ok=True)
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DownloadError(
            f"download of {url} failed: {reason or type(exc).__name__} "
            "(no network? REID_OFFLINE=1 uses cached weights only)"
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    logger.info("downloaded %s (%d bytes, sha256 %s)", url, size, digest.hexdigest())
    return Downloaded(path, digest.hexdigest(), size)
