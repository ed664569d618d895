"""Gallery of known crops: durable vector search with metadata, filters and re-ranking.

Usage::

    gallery = open_gallery("galleries/shop", dim=2048, fingerprint=fp)
    ids = gallery.add([GalleryItem(vector=v, key="cam1/0001.jpg", camera_id=1)], fingerprint=fp)
    hits = gallery.search(queries, k=10, filters=Filters(exclude_camera=1))

The default store is :class:`FaissGallery` (FAISS index + SQLite); other backends implement
:class:`GalleryStore`.
"""

from __future__ import annotations

from pathlib import Path

from reid.gallery.autoindex import choose_index
from reid.gallery.faiss_store import FaissGallery
from reid.gallery.rerank import RerankConfig, cosine_to_sq_euclidean, k_reciprocal_rerank
from reid.gallery.store import Filters, GalleryItem, GalleryRecord, GalleryStats, GalleryStore, Hit

rerank = k_reciprocal_rerank


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
) -> FaissGallery:
    """Open (or, given ``dim``, create) the gallery directory ``path``.

    ``index`` is a FAISS factory string, ``"Flat"`` (exact) when creating and left out it means "what
    the gallery already uses". An existing gallery whose ``dim`` or ``fingerprint`` differs from the
    given ones raises :class:`reid.errors.ModelMismatch` naming both. See :meth:`FaissGallery.open`.
    """
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
    "RerankConfig",
    "choose_index",
    "cosine_to_sq_euclidean",
    "k_reciprocal_rerank",
    "open_gallery",
    "rerank",
]
