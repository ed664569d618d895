"""reid: person re-identification embeddings and gallery search.

The top-level names are imported lazily, so ``import reid.datasets`` (say) does not pay for torch, FAISS
and the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "create_model": "reid.models",
    "list_models": "reid.models",
    "ResNetConfig": "reid.models",
    "ReIDConfig": "reid.models",
    "create_reid_model": "reid.models",
    "Extractor": "reid.engine",
    "EngineOptions": "reid.engine",
    "load_extractor": "reid.engine",
    "load_checkpoint": "reid.checkpoints",
    "open_gallery": "reid.gallery",
}
__all__ = [
    "EngineOptions",
    "Extractor",
    "ReIDConfig",
    "ResNetConfig",
    "create_model",
    "create_reid_model",
    "list_models",
    "load_checkpoint",
    "load_extractor",
    "open_gallery",
]

if TYPE_CHECKING:
    from reid.checkpoints import load_checkpoint
    from reid.engine import EngineOptions, Extractor, load_extractor
    from reid.gallery import open_gallery
    from reid.models import ReIDConfig, ResNetConfig, create_model, create_reid_model, list_models


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reid' has no attribute {name!r}")
