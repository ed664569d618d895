"""Where downloaded weights live and whether the network may be used: ``REID_HOME``, ``REID_OFFLINE``,
``REID_ZOO_FILE``. The service reads them through its settings, every other command from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reid.errors import ConfigError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def default_home() -> Path:
    """``$XDG_CACHE_HOME/reid``, else ``~/.cache/reid`` (the XDG default)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "reid"


def env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {os.environ[name]!r}")


@dataclass(frozen=True, kw_only=True)
class ZooOptions:
    """``home``: the cache (``None``: :func:`default_home`); ``offline``: never download, use the cache
    only (like ``HF_HUB_OFFLINE``); ``zoo_file``: a JSON file of extra zoo entries in the format of
    ``reid/zoo/models.json`` (private models, tests), whose names win over the built-in ones."""

    home: Path | None = None
    offline: bool = False
    zoo_file: Path | None = None

    @classmethod
    def from_env(cls) -> ZooOptions:
        home = os.environ.get("REID_HOME", "").strip()
        zoo_file = os.environ.get("REID_ZOO_FILE", "").strip()
        return cls(
            home=Path(home) if home else None,
            offline=env_flag("REID_OFFLINE"),
            zoo_file=Path(zoo_file) if zoo_file else None,
        )

    @property
    def cache_dir(self) -> Path:
        return (self.home or default_home()).expanduser()
