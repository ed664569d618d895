"""Track requests: crops labelled with their track become one aggregated embedding per track."""

from __future__ import annotations

from collections import Counter

import numpy as np
from fastapi.exceptions import RequestValidationError

from app.schemas import TrackOptions
from reid.embeddings import aggregate_groups


def aggregate_tracks(vectors: np.ndarray, options: TrackOptions) -> tuple[list[str], list[int], np.ndarray]:
    """The tracks' labels (in order of first appearance), their sizes and their (T, D) unit embeddings."""
    labels = options.track_labels()
    assert labels is not None  # callers check options.tracks
    if len(labels) != len(vectors):
        loc = ("body", "tracks")
        message = f"got {len(labels)} track labels for {len(vectors)} crops: give one per image or embedding"
        raise RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])
    keys, matrix = aggregate_groups(vectors, labels, options.quality)
    sizes = Counter(labels)
    return [str(key) for key in keys], [sizes[str(key)] for key in keys], matrix
