"""The one record type every image source produces, and helpers shared by the readers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reid.errors import ConfigError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})

# Market-1501 labels with a meaning of their own (see reid.datasets.market).
JUNK_PID = -1
DISTRACTOR_PID = 0


def is_image_file(path: Path) -> bool:
    """True for a visible file whose extension (any case) is one of :data:`IMAGE_EXTENSIONS`."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


@dataclass(frozen=True)
class ImageRecord:
    """One image to embed or evaluate.

    ``key`` is a stable identifier (a POSIX path relative to the source's root, or the manifest's ``key``
    column): resumable indexing skips keys it already holds, so it must not depend on the working
    directory. ``person_id`` and ``camera_id`` are ``None`` when unknown; camera ids are kept exactly as
    written in the source (Market-1501 names are 1-based). ``timestamp`` is POSIX seconds (UTC).
    ``track_id`` names the tracker's track the crop belongs to (Market-1501: person, camera and sequence),
    ``None`` when unknown.
    """

    path: Path
    key: str
    person_id: int | None = None
    camera_id: int | None = None
    timestamp: float | None = None
    metadata: Mapping[str, object] = field(default_factory=dict, hash=False)
    track_id: str | None = None

    @property
    def is_junk(self) -> bool:
        """A Market-1501 junk detection (person ``-1``): the evaluator ignores it in the gallery."""
        return self.person_id == JUNK_PID


def label_arrays(records: Sequence[ImageRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Person and camera ids as two int64 arrays, for :func:`reid.evaluation.evaluate_rank`.

    Raises :class:`ConfigError` naming the first record without a person or a camera.
    """
    pids = np.empty(len(records), dtype=np.int64)
    camids = np.empty(len(records), dtype=np.int64)
    for i, record in enumerate(records):
        if record.person_id is None or record.camera_id is None:
            raise ConfigError(f"{record.key}: evaluation needs a person id and a camera id for every image")
        pids[i] = record.person_id
        camids[i] = record.camera_id
    return pids, camids
