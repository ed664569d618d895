"""Gallery of known crops: durable vector search with metadata, filters and re-ranking.

Usage::

    gallery = open_gallery("galleries/shop", dim=2048, fingerprint=fp)
    ids = gallery.add([GalleryItem(vector=v, key="cam1/0001.jpg", camera_id=1)], fingerprint=fp)
    hits = gallery.search(queries, k=10, filters=Filters(exclude_camera=1))

The default store is :class:`FaissGallery` (FAISS index + SQLite); :class:`MilvusGallery` (the
optional ``milvus`` extra, imported on first use) implements the same :class:`GalleryStore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reid.gallery.autoindex import choose_index
from reid.gallery.backends import (
    BACKENDS,
    DEFAULT_COLLECTION,
    MILVUS_MAX_TOPK,
    Backend,
    GallerySpec,
    open_gallery,
)
from reid.gallery.faiss_store import FaissGallery
from reid.gallery.rerank import RerankConfig, cosine_to_sq_euclidean, k_reciprocal_rerank, rerank_candidates
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


__all__ = [
    "BACKENDS",
    "DEFAULT_COLLECTION",
    "MILVUS_MAX_TOPK",
    "Backend",
    "FaissGallery",
    "Filters",
    "GalleryItem",
    "GalleryRecord",
    "GallerySpec",
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
    "rerank_candidates",
]
