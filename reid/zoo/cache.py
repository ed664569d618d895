"""The download cache: one folder per zoo name or URL under ``REID_HOME/weights``, each holding the file,
its manifest, a ``<file>.sha256`` record and a lock.

A download lands in a temporary file and is renamed into place only after its SHA-256 checks out; a
``flock`` on the folder's lock file makes concurrent processes (uvicorn workers, Ray replicas) download
once. Without a published hash the first download's hash is recorded (trust on first use) and every
later load is checked against the record.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reid.errors import ConfigError, HashMismatch, OfflineMissing
from reid.fileio import atomic_file, fsync_dir
from reid.zoo.download import TEMP_PREFIX, download

logger = logging.getLogger(__name__)

WEIGHTS_DIR = "weights"
URL_DIR = "url"
LOCK_NAME = ".lock"
RECORD_SUFFIX = ".sha256"
_HASH_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def entry_dir(cache_dir: Path, name: str) -> Path:
    """``<cache>/weights/<namespace>/<name>`` for a zoo name (already validated as path-safe)."""
    return cache_dir / WEIGHTS_DIR / name


def url_dir(cache_dir: Path, url: str) -> Path:
    """``<cache>/weights/url/<16 hex digits of the URL's sha256>`` for a URL outside the zoo."""
    return cache_dir / WEIGHTS_DIR / URL_DIR / hashlib.sha256(url.encode()).hexdigest()[:16]


@contextlib.contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder``'s lock file (created with the folder when missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_NAME, "a+b")  # noqa: SIM115 - closed below, after the unlock
    except OSError as exc:
        raise ConfigError(f"cannot write to the weights cache {folder}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process to finish downloading %s", what)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@dataclass(frozen=True)
class Expected:
    """What the bytes must hash to: a full published ``sha256``, a published ``prefix``, or neither."""

    sha256: str | None = None
    prefix: str | None = None

    def check(self, actual: str, what: str) -> None:
        if self.sha256 is not None and actual != self.sha256:
            raise HashMismatch(
                f"{what}: sha256 {actual} is not the published {self.sha256}",
                expected=self.sha256,
                actual=actual,
            )
        if self.prefix is not None and not actual.startswith(self.prefix):
            raise HashMismatch(
                f"{what}: sha256 {actual} does not start with the published prefix {self.prefix}",
                expected=self.prefix,
                actual=actual,
            )


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def read_record(path: Path) -> str | None:
    """The hash recorded at the first download of ``path`` (``sha256sum`` format), if any."""
    try:
        text = _record_path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    return text.split()[0] if text.strip() else None


def _write_record(path: Path, sha256: str) -> None:
    with atomic_file(_record_path(path)) as f:
        f.write(f"{sha256}  {path.name}\n".encode("ascii"))


def _verify(path: Path, actual: str, expected: Expected, what: str) -> None:
    expected.check(actual, what)
    recorded = read_record(path)
    if recorded is not None and recorded != actual:
        raise HashMismatch(
            f"{what}: sha256 {actual} differs from {recorded}, recorded when it was first downloaded "
            f"(trust on first use); delete {path.parent} to accept the new file",
            expected=recorded,
            actual=actual,
        )


def offline_missing(path: Path, what: str) -> OfflineMissing:
    return OfflineMissing(
        f"{what} is not in the weights cache ({path}) and REID_OFFLINE is set: pull it where the "
        f"network is reachable (`reid weights pull {what}`) or unset REID_OFFLINE"
    )


def ensure_file(
    url: str,
    path: Path,
    *,
    expected: Expected,
    offline: bool,
    what: str,
    progress: bool = True,
) -> str:
    """Make ``path`` hold the verified bytes of ``url`` and return their SHA-256.

    The caller holds :func:`folder_lock` on ``path.parent``. A cached file is checked against the
    published hash and the first download's record; a missing one is downloaded unless ``offline``
    (:class:`OfflineMissing` naming ``what``). Raises :class:`HashMismatch` naming both hashes.
    """
    if path.is_file():
        actual = sha256_of(path)
        _verify(path, actual, expected, what)
        if read_record(path) is None:
            _write_record(path, actual)
        return actual
    if offline:
        raise offline_missing(path, what)
    for stale in path.parent.glob(f"{TEMP_PREFIX}*"):
        # Left by a process killed mid-download; the lock we hold means no one is writing it now.
        stale.unlink(missing_ok=True)
    logger.info("downloading %s from %s", what, url)
    done = download(url, path.parent, label=path.name, progress=progress)
    try:
        _verify(path, done.sha256, expected, f"{what} downloaded from {url}")
        if read_record(path) is None:
            _write_record(path, done.sha256)
        os.replace(done.path, path)
        fsync_dir(path.parent)
    finally:
        done.path.unlink(missing_ok=True)
    return done.sha256
