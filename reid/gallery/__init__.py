"""Gallery of known crops: durable vector search with metadata, filters and re-ranking.

Usage::

    gallery = open_gallery("galleries/shop", dim=2048, fingerprint=fp)
    ids = gallery.add([GalleryItem(vector=v, key="cam1/0001.jpg", camera_id=1)], fingerprint=fp)
    hits = gallery.search(queries, k=10, filters=Filters(exclude_camera=1))

The default store is :class:`FaissGallery` (FAISS index + SQLite); :class:`MilvusGallery` (the
optional ``milvus`` extra, imported on first use) implements the same :class:`GalleryStore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from reid.errors import ConfigError
from reid.gallery.autoindex import choose_index
from reid.gallery.faiss_store import FaissGallery
from reid.gallery.rerank import RerankConfig, cosine_to_sq_euclidean, k_reciprocal_rerank
from reid.gallery.store import Filters, GalleryItem, GalleryRecord, GalleryStats, GalleryStore, Hit

if TYPE_CHECKING:
    from reid.gallery.milvus_store import MilvusGallery

rerank = k_reciprocal_rerank


def __getattr__(name: str) -> Any:
    """``MilvusGallery`` on first use, so the FAISS-only install never imports pymilvus."""
    if name == "MilvusGallery":
        from reid.gallery.milvus_store import MilvusGallery

        return MilvusGallery
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@overload
def open_gallery(
    path: str | Path,
    *,
    dim: int | None = ...,
    fingerprint: str | None = ...,
    index: str | None = ...,
    train_size: int | None = ...,
    nprobe: int | None = ...,
    ef_search: int | None = ...,
    use_gpu: bool | None = ...,
    read_only: bool = ...,
    backend: Literal["faiss"] = ...,
) -> FaissGallery: ...


@overload
def open_gallery(
    path: str | Path,
    *,
    dim: int | None = ...,
    fingerprint: str | None = ...,
    index: str | None = ...,
    backend: Literal["milvus"],
    collection: str | None = ...,
) -> MilvusGallery: ...


def open_gallery(
    path: str | Path,
    *,
    dim: int | None = None,
    fingerprint: str | None = None,
    index: str | None = None,
    train_size: int | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    use_gpu: bool | None = None,
    read_only: bool = False,
    backend: Literal["faiss", "milvus"] = "faiss",
    collection: str | None = None,
) -> FaissGallery | MilvusGallery:
    """Open (or, given ``dim``, create) the gallery at ``path``.

    ``backend="faiss"`` (default): ``path`` is a directory and ``index`` a FAISS factory string,
    ``"Flat"`` (exact) when creating and left out it means "what the gallery already uses"; see
    :meth:`FaissGallery.open`. ``backend="milvus"``: ``path`` is a Milvus URI or a local milvus-lite
    file, ``index`` is ``"FLAT"``, ``"IVF_FLAT"`` or ``"HNSW"`` and ``collection`` names the collection;
    see :meth:`MilvusGallery.open`. An existing gallery whose ``dim`` or ``fingerprint`` differs from
    the given ones raises :class:`reid.errors.ModelMismatch` naming both.
    """
    if backend == "milvus":
        faiss_only = {"train_size": train_size, "nprobe": nprobe, "ef_search": ef_search, "use_gpu": use_gpu}
        given = sorted(name for name, value in faiss_only.items() if value is not None)
        if given or read_only:
            raise ConfigError(f"the Milvus backend does not take {given or ['read_only']}")
        from reid.gallery.milvus_store import DEFAULT_COLLECTION, MilvusGallery

        return MilvusGallery.open(
            path, dim=dim, fingerprint=fingerprint, index=index, collection=collection or DEFAULT_COLLECTION
        )
    if backend != "faiss":
        raise ConfigError(f"unknown gallery backend {backend!r}; choose 'faiss' or 'milvus'")
    if collection is not None:
        raise ConfigError("collection= applies to the Milvus backend only")
    return FaissGallery.open(
        path,
        dim=dim,
        fingerprint=fingerprint,
        index=index,
        train_size=train_size,
        nprobe=nprobe,
        ef_search=ef_search,
        use_gpu=use_gpu,
        read_only=read_only,
    )


__all__ = [
    "FaissGallery",
    "Filters",
    "GalleryItem",
    "GalleryRecord",
    "GalleryStats",
    "GalleryStore",
    "Hit",
    "MilvusGallery",
    "RerankConfig",
    "choose_index",
    "cosine_to_sq_euclidean",
    "k_reciprocal_rerank",
    "open_gallery",
    "rerank",
]
