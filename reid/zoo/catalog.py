"""The model zoo as data: ``models.json`` in this package (plus an optional file of one's own) read into
frozen :class:`ZooEntry` records.

A file holds ``families`` (facts shared by a training recipe: layout, input size, head and stem details)
and ``models`` (name → URL, architecture, dataset, published metrics, hash); a model's fields win over its
family's. Names are ``namespace/name`` and double as folders of the cache.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, get_args
from urllib.parse import unquote, urlsplit

from reid.checkpoints.sources import SOURCES
from reid.errors import ConfigError, UnknownWeights
from reid.models import list_models
from reid.models.config import NeckFeat, ReIDConfig, StemPool

ZOO_FORMAT_VERSION = 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)+")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_PREFIX_RE = re.compile(r"[0-9a-f]{8,63}")


@dataclass(frozen=True, kw_only=True)
class ZooEntry:
    """One downloadable checkpoint and what is known about it.

    ``source`` is its key layout (:data:`reid.checkpoints.SOURCES`), ``architecture`` the backbone preset
    the file must hold. ``input_size`` (height, width), ``neck_feat`` and ``stem_pool`` come from the
    training config and win over what the loader would infer from the keys. ``sha256`` is the full hash
    when published; ``sha256_prefix`` a torch.hub-style prefix from the file name. ``metrics`` are the
    publisher's figures on ``dataset``, in percent.
    """

    name: str
    url: str
    source: str
    architecture: str
    input_size: tuple[int, int]
    dataset: str = ""
    metrics: tuple[tuple[str, float], ...] = ()
    neck_feat: NeckFeat | None = None
    stem_pool: StemPool | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise ConfigError(f"zoo name {self.name!r} must be 'namespace/name' (letters, digits, ._-)")
        if urlsplit(self.url).scheme not in ("https", "http"):
            raise ConfigError(f"zoo entry {self.name}: url must be http(s), got {self.url!r}")
        if self.source not in SOURCES:
            raise ConfigError(f"zoo entry {self.name}: source must be one of {', '.join(SOURCES)}")
        if self.architecture not in (*list_models(), "custom"):
            raise ConfigError(
                f"zoo entry {self.name}: architecture {self.architecture!r} is not a reid preset"
            )
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ConfigError(f"zoo entry {self.name}: input_size must be [height, width]")
        if self.neck_feat is not None and self.neck_feat not in get_args(NeckFeat):
            raise ConfigError(f"zoo entry {self.name}: neck_feat must be one of {get_args(NeckFeat)}")
        if self.stem_pool is not None and self.stem_pool not in get_args(StemPool):
            raise ConfigError(f"zoo entry {self.name}: stem_pool must be one of {get_args(StemPool)}")
        if self.sha256 is not None and not _SHA256_RE.fullmatch(self.sha256):
            raise ConfigError(f"zoo entry {self.name}: sha256 must be 64 lowercase hex digits")
        if self.sha256_prefix is not None and not _PREFIX_RE.fullmatch(self.sha256_prefix):
            raise ConfigError(f"zoo entry {self.name}: sha256_prefix must be 8 to 63 lowercase hex digits")

    @property
    def file_name(self) -> str:
        return url_file_name(self.url)

    def apply(self, config: ReIDConfig) -> ReIDConfig:
        """``config`` (inferred from the keys) with the zoo's head and stem facts."""
        if self.stem_pool is not None and self.stem_pool != config.backbone.stem_pool:
            config = dataclasses.replace(config, backbone=config.backbone.replace(stem_pool=self.stem_pool))
        if self.neck_feat is not None and self.neck_feat != config.neck_feat:
            config = dataclasses.replace(config, neck_feat=self.neck_feat)
        return config

    def metrics_text(self) -> str:
        """``"rank1 94.4, mAP 86.1, mINP 59.4 (Market-1501)"``, or ``"-"`` when none are published."""
        if not self.metrics:
            return "-"
        figures = ", ".join(f"{key} {_percent(value)}" for key, value in self.metrics)
        return f"{figures} ({self.dataset})" if self.dataset else figures


def _percent(value: float) -> str:
    """As published: ``50.0``, ``94.4``, ``22.54``."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def url_file_name(url: str) -> str:
    """The last path segment of ``url``, reduced to characters that are safe in a file name."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "weights.bin"


_ENTRY_FIELDS = {f.name for f in dataclasses.fields(ZooEntry)} - {"name"}


def _entry(name: str, record: Mapping[str, Any], families: Mapping[str, Any], where: str) -> ZooEntry:
    if not isinstance(record, Mapping):
        raise ConfigError(f"{where}: zoo entry {name!r} must be an object")
    values = dict(record)
    family = values.pop("family", None)
    if family is not None:
        if family not in families:
            raise ConfigError(f"{where}: zoo entry {name!r} names unknown family {family!r}")
        values = {**families[family], **values}
    unknown = set(values) - _ENTRY_FIELDS
    if unknown:
        raise ConfigError(f"{where}: zoo entry {name!r} has unknown field(s) {sorted(unknown)}")
    metrics = values.get("metrics", {})
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"{where}: zoo entry {name!r}: metrics must be an object")
    try:
        values["metrics"] = tuple((str(k), float(v)) for k, v in metrics.items())
        values["input_size"] = tuple(int(v) for v in values.get("input_size", ()))
        return ZooEntry(name=name, **values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid zoo entry {name!r}: {exc}") from None


def parse_zoo(document: Any, where: str) -> dict[str, ZooEntry]:
    """The entries of one zoo document (``models.json``'s format)."""
    if not isinstance(document, Mapping) or document.get("format_version") != ZOO_FORMAT_VERSION:
        raise ConfigError(f"{where}: not a zoo file of format_version {ZOO_FORMAT_VERSION}")
    families = document.get("families", {})
    models = document.get("models", {})
    if not isinstance(families, Mapping) or not isinstance(models, Mapping):
        raise ConfigError(f"{where}: 'families' and 'models' must be objects")
    return {name: _entry(name, record, families, where) for name, record in models.items()}


def _read(path: Path) -> dict[str, ZooEntry]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read zoo file {path}: {exc}") from None
    return parse_zoo(document, str(path))


@lru_cache(maxsize=1)
def builtin_zoo() -> Mapping[str, ZooEntry]:
    text = resources.files("reid.zoo").joinpath("models.json").read_text(encoding="utf-8")
    return parse_zoo(json.loads(text), "reid/zoo/models.json")


def load_zoo(extra: str | os.PathLike[str] | None = None) -> dict[str, ZooEntry]:
    """The built-in zoo, plus the entries of ``extra`` (a file in the same format; its names win)."""
    zoo = dict(builtin_zoo())
    if extra is not None:
        zoo.update(_read(Path(extra)))
    return zoo


def looks_like_name(value: str) -> bool:
    """Whether ``value`` has the shape of a zoo name (``namespace/name``)."""
    return _NAME_RE.fullmatch(value) is not None


def get_entry(zoo: Mapping[str, ZooEntry], name: str) -> ZooEntry:
    """``zoo[name]``, or :class:`UnknownWeights` suggesting close names."""
    try:
        return zoo[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name, list(zoo), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `reid weights list` shows the zoo"
    raise UnknownWeights(f"{name!r} is not a file, a folder or a model of the zoo{hint}")


def entry_for_url(zoo: Mapping[str, ZooEntry], url: str) -> ZooEntry | None:
    """The zoo entry published at ``url``, so a URL of the zoo gets the same facts and checks as its name."""
    return next((entry for entry in zoo.values() if entry.url == url), None)
