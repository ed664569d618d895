"""Image sources for indexing: a CSV / JSONL manifest or a plain folder tree.

Manifest fields (CSV: a header row; JSONL: one object per line):

* ``path`` (required): relative paths are resolved against the manifest's folder.
* ``key``: stable id for resumable indexing; defaults to the path relative to the manifest's folder
  (POSIX), or the absolute path for files outside it.
* ``person_id`` or ``person``, ``camera_id`` or ``camera``: integers.
* ``timestamp``: POSIX seconds, or ISO 8601 (a time without a zone is taken as UTC).
* ``track_id`` or ``track``: the tracker's track of the crop (any text; numbers are read as text).
* anything else goes to ``metadata`` (JSONL may also give a ``metadata`` object; CSV cells are strings
  and empty cells are dropped).

Files are not opened here: a missing or corrupt image is reported by whoever decodes it.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

from reid.datasets.market import match_market_name
from reid.datasets.records import ImageRecord, is_image_file
from reid.errors import ConfigError

logger = logging.getLogger(__name__)

CSV_SUFFIXES = frozenset({".csv"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})

_ALIASES = {"person": "person_id", "camera": "camera_id", "track": "track_id"}
_FIELDS = frozenset({"path", "key", "person_id", "camera_id", "timestamp", "track_id"})


class _RowError(Exception):
    """A bad value in one row; the reader adds the file and line number."""


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _RowError(f"track_id must be text or an integer, got {value!r}")
    return str(value).strip()


def _as_int(value: object, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _RowError(f"{name} must be an integer, got {value!r}")


def _as_timestamp(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.timestamp()
    raise _RowError(f"timestamp must be POSIX seconds or ISO 8601, got {value!r}")


def _default_key(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _record(fields: Mapping[str, object], metadata: dict[str, object], base: Path) -> ImageRecord:
    """One record from a row whose column names are already canonical (aliases applied)."""
    raw_path = fields.get("path")
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise _RowError("missing path")
    # normpath, not resolve(): no file-system access, and symlinked trees keep their own names.
    path = Path(os.path.normpath(base / raw_path.strip()))
    key = fields.get("key")
    if key is None or key == "":
        key = _default_key(path, base)
    elif not isinstance(key, str):
        raise _RowError(f"key must be a string, got {key!r}")
    return ImageRecord(
        path=path,
        key=key,
        person_id=_as_int(fields.get("person_id"), "person_id"),
        camera_id=_as_int(fields.get("camera_id"), "camera_id"),
        timestamp=_as_timestamp(fields.get("timestamp")),
        metadata=metadata,
        track_id=_as_text(fields.get("track_id")),
    )


def _split_fields(row: Mapping[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """Known fields (aliases resolved) and the rest, which becomes metadata."""
    fields: dict[str, object] = {}
    extra: dict[str, object] = {}
    for name, value in row.items():
        canonical = _ALIASES.get(name, name)
        if canonical in _FIELDS:
            if canonical in fields:
                raise _RowError(f"both {canonical} and its alias {name} given")
            fields[canonical] = value
        else:
            extra[name] = value
    return fields, extra


def _csv_rows(path: Path) -> Iterator[tuple[int, ImageRecord]]:
    base = path.parent.absolute()
    # utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or ()]
        if "path" not in header:
            raise ConfigError(f"{path} line 1: the header row must have a 'path' column")
        reader.fieldnames = header
        for row in reader:
            try:
                if None in row:
                    raise _RowError("more cells than header columns")
                cells = {name: value for name, value in row.items() if value not in (None, "")}
                fields, extra = _split_fields(cells)
                yield reader.line_num, _record(fields, extra, base)
            except _RowError as exc:
                raise ConfigError(f"{path} line {reader.line_num}: {exc}") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, ImageRecord]]:
    base = path.parent.absolute()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise _RowError(f"invalid JSON: {exc.msg}") from None
                if not isinstance(row, dict):
                    raise _RowError("each line must be a JSON object")
                nested = row.pop("metadata", None)
                if nested is None:
                    nested = {}
                elif not isinstance(nested, dict):
                    raise _RowError("metadata must be a JSON object")
                fields, extra = _split_fields(row)
                clash = sorted(extra.keys() & nested.keys())
                if clash:
                    raise _RowError(f"{clash[0]!r} given both at top level and in metadata")
                yield number, _record(fields, {**extra, **nested}, base)
            except _RowError as exc:
                raise ConfigError(f"{path} line {number}: {exc}") from None


def read_image_list(path: str | Path) -> list[ImageRecord]:
    """Records of a ``.csv`` or ``.jsonl`` / ``.ndjson`` manifest, in file order.

    Any bad row raises :class:`ConfigError` naming the file and line, as does a key used twice.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        rows = _csv_rows(path)
    elif suffix in JSONL_SUFFIXES:
        rows = _jsonl_rows(path)
    else:
        raise ConfigError(f"{path}: a manifest must be .csv, .jsonl or .ndjson")
    records: list[ImageRecord] = []
    first_line: dict[str, int] = {}
    for number, record in rows:
        if record.key in first_line:
            raise ConfigError(
                f"{path} line {number}: duplicate key {record.key!r} (first on line {first_line[record.key]})"
            )
        first_line[record.key] = number
        records.append(record)
    logger.info("%s: %d images", path, len(records))
    return records


def scan_folder(root: str | Path) -> list[ImageRecord]:
    """Every image under ``root`` (recursively, hidden files and folders skipped), sorted by key.

    Keys are POSIX paths relative to ``root``. Person and camera are filled from file names that follow
    a Market-1501 / DukeMTMC-reID / MSMT17 pattern and left ``None`` otherwise.
    """
    root = Path(root).absolute()
    records = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            path = Path(folder, name)
            if not is_image_file(path):
                continue
            parsed = match_market_name(name)
            records.append(
                ImageRecord(
                    path=path,
                    key=path.relative_to(root).as_posix(),
                    person_id=parsed.person_id if parsed else None,
                    camera_id=parsed.camera_id if parsed else None,
                    track_id=parsed.track_id if parsed else None,
                )
            )
    records.sort(key=lambda record: record.key)
    logger.info("%s: %d images", root, len(records))
    return records


def discover_source(path: str | Path) -> list[ImageRecord]:
    """Records of an indexing source: a manifest file or a folder tree (see module docs).

    Raises :class:`FileNotFoundError` if ``path`` does not exist and :class:`ConfigError` if it is
    another kind of file or holds no image.
    """
    path = Path(path)
    if path.is_dir():
        records = scan_folder(path)
    elif path.is_file():
        records = read_image_list(path)
    else:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if not records:
        raise ConfigError(f"{path}: no images found")
    return records
