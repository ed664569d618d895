"""Atomic FAISS index snapshots: one file holding a JSON header and the serialised index.

The header (model identity, factory string, ``seq`` = the metadata database's ``last_seq`` when the
snapshot was taken) travels in the same file as the index, so the two can never disagree. The file is
written to a temporary name, fsynced, renamed over the old one and the directory fsynced: a crash
leaves either the old snapshot or the new one, never a torn file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import faiss

from reid.errors import GalleryError
from reid.fileio import atomic_file

# The stubs bundled with faiss lack the Python-callback IO classes.
_faiss: Any = faiss

MAGIC = b"REIDSNAP"
_LENGTH = struct.Struct("<I")


def write_snapshot(path: Path, index: faiss.Index, header: dict[str, Any]) -> int:
    """Atomically replace ``path`` with ``index`` and ``header``; returns the file size in bytes."""
    head = json.dumps(header, sort_keys=True).encode()
    with atomic_file(path, mode=0o644) as f:  # as the snapshot always was: read-only openers may be others
        f.write(MAGIC + _LENGTH.pack(len(head)) + head)
        writer = _faiss.PyCallbackIOWriter(f.write)
        faiss.write_index(index, writer)
        del writer  # flushes anything it buffered before the file is synced
    return path.stat().st_size


def read_header(path: Path) -> dict[str, Any]:
    """The header alone (cheap: the index bytes are not read)."""
    with path.open("rb") as f:
        return _header(f, path)


def _header(f: Any, path: Path) -> dict[str, Any]:
    if f.read(len(MAGIC)) != MAGIC:
        raise GalleryError(f"{path} is not a gallery index snapshot")
    try:
        (length,) = _LENGTH.unpack(f.read(_LENGTH.size))
        header: dict[str, Any] = json.loads(f.read(length))
    except (struct.error, ValueError) as exc:
        raise GalleryError(f"{path}: corrupt snapshot header: {exc}") from exc
    return header


def read_snapshot(path: Path) -> tuple[dict[str, Any], faiss.Index]:
    """Header and index; a file that cannot be read raises :class:`GalleryError`."""
    with path.open("rb") as f:
        header = _header(f, path)
        try:
            index = faiss.read_index(_faiss.PyCallbackIOReader(f.read))
        except RuntimeError as exc:
            raise GalleryError(f"{path}: corrupt index snapshot: {exc}") from exc
    return header, index
