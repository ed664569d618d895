"""The audit log: one JSON line per action on a gallery, appended to a local file.

Each line says when (``time``, UTC), what (``action``: ``add``, ``upsert``, ``delete``, ``erase``,
``retention``, ``retention_policy``, ``export``; ``search`` and ``read`` when searches are logged), on
which gallery, through what (``via``: the HTTP endpoint or the command), by whom (``key``: the API key's
*name*, never the key; ``user``: the OS user of a command) and the action's filter and counts. Vectors,
images and item keys are never written.

The file is opened append-only; each line is one ``write`` (lines of concurrent writers never
interleave) and is fsynced before the action returns, except search lines. It lives beside the data
(the FAISS gallery folder; next to a milvus-lite file) unless a path is given. For a Milvus server it
is a local file of the process (``REID_AUDIT_LOG``), not a collection: a collection would be writable
and deletable with the same credentials as the data it audits, while a file can be shipped to the
host's log pipeline and made append-only there (``chattr +a``).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reid.errors import GalleryError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who acts: ``via`` the endpoint (``POST /gallery/erase``) or command (``reid gallery delete``),
    with the API key's name or the OS user."""

    via: str
    key: str | None = None
    user: str | None = None


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container running as an arbitrary uid)
        return None


_process_actor = Actor(via=Path(sys.argv[0]).name or "python", user=_os_user())


def set_process_actor(via: str) -> None:
    """Name what this process does (the CLI: ``reid gallery delete``); it is the actor of every action
    given no other."""
    global _process_actor
    _process_actor = Actor(via=via, user=_os_user())


def process_actor() -> Actor:
    return _process_actor


class AuditLog:
    """An append-only JSON-lines file; thread-safe."""

    def __init__(self, path: str | Path, *, gallery: str, clock: Callable[[], float]) -> None:
        """Open (create) ``path`` for appending; a log that cannot be opened fails the gallery's open."""
        self.path = Path(path)
        self._gallery = gallery
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise GalleryError(f"cannot open the audit log {self.path}: {exc}") from exc

    def record(self, action: str, actor: Actor, *, sync: bool = True, **details: Any) -> None:
        """Append one line. A failure to write is logged, not raised: the action it records is done."""
        when = datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds")
        line = {
            "time": when,
            "action": action,
            "gallery": self._gallery,
            "via": actor.via,
            "key": actor.key,
            "user": actor.user,
            **details,
        }
        data = (json.dumps(line, default=str) + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise GalleryError(f"the audit log {self.path} is closed")
            try:
                os.write(self._fd, data)
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                logger.error("could not write the audit log %s (%s): %s", self.path, exc, line)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
