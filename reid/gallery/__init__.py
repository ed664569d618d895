"""Gallery of known crops: durable vector search with metadata, filters and re-ranking.

Usage::

    gallery = open_gallery("galleries/shop", dim=2048, fingerprint=fp)
    ids = gallery.add([GalleryItem(vector=v, key="cam1/0001.jpg", camera_id=1)], fingerprint=fp)
    hits = gallery.search(queries, k=10, filters=Filters(exclude_camera=1))

:class:`GalleryStore` (the core) gives every backend the same semantics over a small
:class:`~reid.gallery.storage.Storage`: FAISS + SQLite (``faiss``, the default) or Milvus (``milvus``, the
optional extra). Backends are imported when a gallery is opened on them, not by this package.
"""

from __future__ import annotations

from reid.gallery.audit import Actor
from reid.gallery.backends.faiss.autoindex import choose_index
from reid.gallery.backends.faiss.params import FaissSearchParams
from reid.gallery.core import Erasure, GalleryStats, GalleryStore, StoreOptions
from reid.gallery.filters import Filters
from reid.gallery.items import ITEM_FIELDS, GalleryItem, GalleryRecord, Hit, ItemFields
from reid.gallery.registry import BACKENDS, DEFAULT_COLLECTION, MILVUS_MAX_TOPK, Backend
from reid.gallery.rerank import RerankConfig, cosine_to_sq_euclidean, k_reciprocal_rerank, rerank_candidates
from reid.gallery.retention import RetentionPolicy
from reid.gallery.spec import GallerySpec, open_gallery
from reid.gallery.storage import SearchParams, Storage

__all__ = [
    "BACKENDS",
    "DEFAULT_COLLECTION",
    "ITEM_FIELDS",
    "MILVUS_MAX_TOPK",
    "Actor",
    "Backend",
    "Erasure",
    "FaissSearchParams",
    "Filters",
    "GalleryItem",
    "GalleryRecord",
    "GallerySpec",
    "GalleryStats",
    "GalleryStore",
    "Hit",
    "ItemFields",
    "RerankConfig",
    "RetentionPolicy",
    "SearchParams",
    "Storage",
    "StoreOptions",
    "choose_index",
    "cosine_to_sq_euclidean",
    "k_reciprocal_rerank",
    "open_gallery",
    "rerank_candidates",
]
