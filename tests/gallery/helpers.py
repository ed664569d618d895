"""Helpers for the gallery tests: deterministic unit vectors, items with metadata, a reference search."""

import numpy as np

from reid.gallery import GalleryItem


def unit_vectors(n, dim, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_items(vectors, *, prefix="k"):
    """Item i: key f"{prefix}{i}", person i // 4, camera i % 3 (None every 7th), timestamp 10·i."""
    return [
        GalleryItem(
            vector=v,
            key=f"{prefix}{i}",
            person_id=i // 4,
            camera_id=None if i % 7 == 6 else i % 3,
            source=f"/crops/{i}.jpg",
            timestamp=10.0 * i,
            metadata={"i": i},
        )
        for i, v in enumerate(vectors)
    ]


def brute_force(gallery_vectors, gallery_ids, queries, k):
    """Reference top-k by inner product: (ids, scores) per query, ties broken by lower id."""
    scores = queries @ gallery_vectors.T
    out = []
    for row in scores:
        order = np.lexsort((gallery_ids, -row))[:k]
        out.append((np.asarray(gallery_ids)[order].tolist(), row[order]))
    return out
