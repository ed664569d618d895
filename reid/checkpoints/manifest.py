"""The JSON record kept beside a weight file: how to rebuild, feed and identify the model it holds.

``weights/foo.safetensors`` is described by ``weights/foo.json``. The record names its weight file and
that file's SHA-256, so a manifest never silently describes different bytes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reid.checkpoints.sources import SOURCES
from reid.errors import CheckpointError, ConfigError
from reid.fileio import atomic_file
from reid.models import ReIDConfig
from reid.preprocess import PreprocessConfig

logger = logging.getLogger(__name__)

MANIFEST_FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".json"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_FIELD_TYPES: dict[str, type] = {
    **dict.fromkeys(
        ("source", "weights_file", "sha256", "fingerprint", "created_at", "notes", "zoo", "url"), str
    ),
    **dict.fromkeys(("embedding_dim", "format_version"), int),
    "model": ReIDConfig,
    "preprocess": PreprocessConfig,
}


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """``source`` is the key layout of the described file (``"reid"`` for converted and trained files); the
    original framework of a converted file is told in ``notes``. ``zoo`` and ``url`` say where a downloaded
    file came from (empty for local files); ``training`` how ``reid train`` made it."""

    model: ReIDConfig
    preprocess: PreprocessConfig
    source: str
    weights_file: str
    sha256: str
    embedding_dim: int
    fingerprint: str
    created_at: str = field(default_factory=_utc_now)
    notes: str = ""
    zoo: str = ""
    url: str = ""
    format_version: int = MANIFEST_FORMAT_VERSION
    # reid train's record: config and its hash, epochs, evaluation (None for other files).
    training: dict[str, Any] | None = None
    # Match thresholds from `reid eval --save-thresholds`: {"dataset": ..., "levels": [{"fmr", "score"...}]}.
    thresholds: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("training", "thresholds"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise CheckpointError(f"manifest field {name} must be a table, got {value!r}")
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise CheckpointError(f"manifest field {name} must be a {kind.__name__}, got {value!r}")
        if self.format_version != MANIFEST_FORMAT_VERSION:
            raise CheckpointError(
                f"manifest format_version {self.format_version!r} is not supported "
                f"(this reid reads version {MANIFEST_FORMAT_VERSION})"
            )
        if self.source not in SOURCES:
            raise CheckpointError(f"manifest source {self.source!r} is not one of {', '.join(SOURCES)}")
        if not self.weights_file or Path(self.weights_file).name != self.weights_file:
            raise CheckpointError(
                f"manifest weights_file must be a bare file name, got {self.weights_file!r}"
            )
        if not _SHA256_RE.fullmatch(self.sha256):
            raise CheckpointError(f"manifest sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.embedding_dim != self.model.embedding_dim:
            raise CheckpointError(
                f"manifest embedding_dim {self.embedding_dim} disagrees with its model config "
                f"({self.model.embedding_dim})"
            )
        if not self.fingerprint.startswith(f"{self.model.backbone_name}-"):
            raise CheckpointError(
                f"manifest fingerprint {self.fingerprint!r} is not one of a {self.model.backbone_name} model"
            )

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        record["model"] = self.model.to_dict()
        record["preprocess"] = self.preprocess.to_dict()
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Manifest:
        names = {f.name for f in fields(cls)}
        unknown = set(record) - names
        if unknown:
            raise CheckpointError(f"unknown manifest field(s) {sorted(unknown)}")
        required = {"model", "preprocess", "source", "weights_file", "sha256", "embedding_dim", "fingerprint"}
        missing = required - set(record)
        if missing:
            raise CheckpointError(f"manifest lacks field(s) {sorted(missing)}")
        try:
            model = ReIDConfig.from_dict(record["model"])
            preprocess = PreprocessConfig.from_dict(record["preprocess"])
        except (ConfigError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"manifest has an invalid model or preprocess section: {exc}") from exc
        return cls(**{**record, "model": model, "preprocess": preprocess})


def manifest_path(weights_path: str | os.PathLike[str]) -> Path:
    """``<folder>/<weights stem>.json``."""
    path = Path(weights_path)
    return path.with_name(path.stem + MANIFEST_SUFFIX)


def read_manifest(weights_path: str | os.PathLike[str]) -> Manifest | None:
    """The manifest beside ``weights_path``, or ``None`` if there is none.

    The manifest may describe a sibling with the same stem (``foo.pth`` next to ``foo.safetensors``);
    callers compare :attr:`Manifest.weights_file` and :attr:`Manifest.sha256` with the file.
    Raises :class:`CheckpointError` naming the manifest when it is unreadable or invalid.
    """
    path = manifest_path(weights_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"cannot read manifest {path}: {exc}") from exc
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise CheckpointError("expected a JSON object")
        return Manifest.from_dict(record)
    except (json.JSONDecodeError, CheckpointError, TypeError) as exc:
        raise CheckpointError(f"invalid manifest {path}: {exc}") from exc


def check_manifest_writable(weights_path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` if the manifest slot of ``weights_path`` holds a valid manifest of
    another file of the same stem (``foo.json`` describing ``foo.pth`` while writing ``foo.safetensors``)."""
    weights_path = Path(weights_path)
    try:
        existing = read_manifest(weights_path)
    except CheckpointError as exc:
        logger.warning("an unreadable manifest will be replaced: %s", exc)
        return
    if existing is not None and existing.weights_file != weights_path.name:
        raise CheckpointError(
            f"{manifest_path(weights_path)} already describes {existing.weights_file}; "
            "give one of the files another name or folder"
        )


def write_manifest(weights_path: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest`` beside ``weights_path`` atomically and return its path.

    Refuses to replace a valid manifest that describes another file of the same stem.
    """
    weights_path = Path(weights_path)
    if manifest.weights_file != weights_path.name:
        raise CheckpointError(f"manifest describes {manifest.weights_file}, not {weights_path.name}")
    check_manifest_writable(weights_path)
    path = manifest_path(weights_path)
    with atomic_file(path) as f:
        f.write((json.dumps(manifest.to_dict(), indent=2) + "\n").encode("utf-8"))
    return path
