"""The backend registry: each backend's name, and where its :class:`~reid.gallery.storage.Storage` lives.

Light on purpose: it names modules without importing them, so ``import reid.gallery`` (and every
command that does not open a gallery) imports neither FAISS nor pymilvus; :func:`storage_class` imports a
backend on first use. Facts that settings need without the backend's client (Milvus's default
collection and top-k cap) live here too.

Adding a backend: write a module under ``reid/gallery/backends/`` with a class that implements
``Storage`` (``backends/milvus.py`` is a compact example), add its name to :data:`Backend` and a line
to :data:`_STORAGE`, and say in the contract suite (``tests/gallery/test_contract.py``) where it keeps a
test gallery: the suite runs on every registered backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from reid.errors import ConfigError

if TYPE_CHECKING:
    from reid.gallery.storage import Storage

Backend = Literal["faiss", "milvus"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
# Milvus facts the settings need without importing pymilvus.
DEFAULT_COLLECTION = "reid_gallery"
MILVUS_MAX_TOPK = 16384  # Milvus's cap on limit (+ offset) per search

_STORAGE: dict[str, str] = {
    "faiss": "reid.gallery.backends.faiss.storage:FaissStorage",
    "milvus": "reid.gallery.backends.milvus:MilvusStorage",
}


def check_backend(name: str) -> Backend:
    """``name`` as a :data:`Backend`, or :class:`ConfigError` naming the choices."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown gallery backend {name!r}; choose one of {list(BACKENDS)}")
    return name


class StorageClass(Protocol):
    """What the registry hands out: a storage class, to open with its backend's options."""

    @property
    def options(self) -> frozenset[str]:
        """The backend-specific keyword arguments :attr:`open` takes besides the request."""
        ...

    @property
    def open(self) -> Callable[..., Storage]:
        """``open(request, **options)``: the storage of an :class:`~reid.gallery.storage.OpenRequest`."""
        ...


def storage_class(name: str) -> StorageClass:
    """The storage class of backend ``name``, imported now."""
    module, _, attribute = _STORAGE[check_backend(name)].partition(":")
    storage: StorageClass = getattr(importlib.import_module(module), attribute)
    return storage
