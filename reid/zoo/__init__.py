"""Weights by name or URL: the model zoo (``models.json``), a verified download cache and offline mode.

Names are imported lazily: the cache and downloader need no torch, the resolver loads checkpoints.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ZooEntry": "reid.zoo.catalog",
    "load_zoo": "reid.zoo.catalog",
    "ZooOptions": "reid.zoo.options",
    "default_home": "reid.zoo.options",
    "ResolvedWeights": "reid.zoo.resolve",
    "WeightsOrigin": "reid.zoo.resolve",
    "pull": "reid.zoo.resolve",
    "pull_url": "reid.zoo.resolve",
    "resolve_weights": "reid.zoo.resolve",
}
__all__ = [
    "ResolvedWeights",
    "WeightsOrigin",
    "ZooEntry",
    "ZooOptions",
    "default_home",
    "load_zoo",
    "pull",
    "pull_url",
    "resolve_weights",
]

if TYPE_CHECKING:
    from reid.zoo.catalog import ZooEntry, load_zoo
    from reid.zoo.options import ZooOptions, default_home
    from reid.zoo.resolve import ResolvedWeights, WeightsOrigin, pull, pull_url, resolve_weights


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reid.zoo' has no attribute {name!r}")
