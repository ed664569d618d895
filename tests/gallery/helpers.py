"""Helpers for the gallery tests: deterministic unit vectors, items with metadata, a reference search."""

import itertools

import numpy as np

from reid.gallery import Filters, GalleryItem
from reid.gallery.items import ITEM_FIELDS
from reid.gallery.ranking import SCORE_TIE_TOLERANCE


def unit_vectors(n, dim, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def scoring(scores, dim):
    """A unit query and one unit vector per entry of ``scores`` whose inner product with it is that score."""
    s = np.asarray(scores, dtype=np.float64)
    vectors = np.zeros((len(s), dim))
    vectors[:, 0], vectors[:, 1] = s, np.sqrt(1 - s**2)
    query = np.zeros((1, dim), dtype=np.float32)
    query[0, 0] = 1
    return query, vectors.astype(np.float32)


def is_best_first(scores):
    """Scores in search order: none above the one before it by more than the tie tolerance."""
    return all(later <= earlier + SCORE_TIE_TOLERANCE for earlier, later in itertools.pairwise(scores))


def make_items(vectors, *, prefix="k"):
    """Item i: key f"{prefix}{i}", person i // 4, camera i % 3 (None every 7th), timestamp 10·i, track
    f"t{i // 2}" (two tracks per person; none every 9th)."""
    return [
        GalleryItem(
            vector=v,
            key=f"{prefix}{i}",
            person_id=i // 4,
            camera_id=None if i % 7 == 6 else i % 3,
            source=f"/crops/{i}.jpg",
            timestamp=10.0 * i,
            metadata={"i": i},
            track_id=None if i % 9 == 8 else f"t{i // 2}",
        )
        for i, v in enumerate(vectors)
    ]


def brute_force(gallery_vectors, gallery_ids, queries, k):
    """Reference top-k by inner product: (ids, scores) per query, best first; scores within the tie
    tolerance of their neighbour in that order are ties, ordered by lower id."""
    scores = queries @ gallery_vectors.T
    out = []
    for row in scores:
        ranked = sorted(
            zip(row.tolist(), np.asarray(gallery_ids).tolist(), strict=True), key=lambda p: (-p[0], p[1])
        )
        groups: list[list[tuple[float, int]]] = []
        for score, item in ranked:
            if groups and groups[-1][-1][0] - score <= SCORE_TIE_TOLERANCE:
                groups[-1].append((score, item))
            else:
                groups.append([(score, item)])
        best = [pair for group in groups for pair in sorted(group, key=lambda p: p[1])][:k]
        out.append(([item for _, item in best], np.array([score for score, _ in best], dtype=np.float32)))
    return out


def item_fields(**given):
    """Every item field, unknown (``None``; ``{}`` for JSON fields) unless given: what a stored item
    reads back as, whatever fields the schema declares."""
    return {spec.name: {} if spec.kind == "json" else None for spec in ITEM_FIELDS} | given


# Filters over make_items' fields (timestamps 10·i), one case per kind of condition and a mix.
FILTER_CASES = [
    Filters(cameras_in={0, 2}),
    Filters(cameras_not_in=[1]),
    Filters(person_ids={3, 4, 5}),
    Filters(exclude_camera=0),
    Filters(time_from=100.0, time_to=250.0),
    Filters(time_from=300.0),
    Filters(cameras_in={1}, person_ids=range(6), time_to=300.0),
    Filters(cameras_in=set()),
    Filters(key_prefix="k1"),  # k1, k10..k19
    Filters(key_prefix="k3", cameras_in={0}),
    Filters(metadata={"i": 7}),
    Filters(metadata={"i": 7.0}),  # numbers compare numerically
    Filters(metadata={"i": "7"}),  # a string never equals a number
    Filters(metadata={"missing": 1}),
]


def _metadata_passes(metadata, conditions):
    def equal(have, want):  # strings equal strings; numbers (true and false are 1 and 0) numerically
        if isinstance(want, str) or isinstance(have, str):
            return have == want
        return isinstance(have, int | float) and have == want

    return all(name in metadata and equal(metadata[name], value) for name, value in conditions.items())


def passes(item, f):
    """Reference filter semantics, written out per field (see Filters' docstring); items are stored at
    one time, so insertion-time bounds are tested apart (tests/gallery/test_erasure.py)."""
    cam, pid, ts = item.camera_id, item.person_id, item.timestamp
    return (
        (f.key_prefix is None or (item.key is not None and item.key.startswith(f.key_prefix)))
        and (f.metadata is None or _metadata_passes(item.metadata, f.metadata))
        and (f.cameras_in is None or cam in f.cameras_in)
        and (cam is None or cam not in (f.cameras_not_in or set()))
        and (f.exclude_camera is None or cam != f.exclude_camera)
        and (f.person_ids is None or pid in f.person_ids)
        and (f.time_from is None or (ts is not None and ts >= f.time_from))
        and (f.time_to is None or (ts is not None and ts <= f.time_to))
    )
