"""Plain-file output of an indexing job, for users who build their search index elsewhere.

Each committed chunk becomes ``embeddings-NNNNN.npy`` (float32, N×dim) and ``embeddings-NNNNN.csv``
(``key,path,person_id,camera_id,timestamp``, one line per row, in the same order; the CSV is also a
valid :func:`reid.datasets.read_image_list` file). Both are written atomically, the CSV last, so a
shard whose CSV exists is complete.

The job writes a shard just *before* committing the same chunk to the gallery: a kill in between
leaves the newest shard with keys the gallery lacks, and :meth:`ShardWriter.drop_uncommitted` removes
it when the job resumes (the chunk is then embedded and written again), so shards hold each key once.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from reid.datasets import ImageRecord

logger = logging.getLogger(__name__)

PREFIX = "embeddings-"
COLUMNS = ("key", "path", "person_id", "camera_id", "timestamp")
_NAME = re.compile(rf"{PREFIX}(\d+)\.(npy|csv)")


def _shard_numbers(folder: Path) -> list[int]:
    found = {int(m.group(1)) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))}
    return sorted(found)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_shard_keys(csv_path: Path) -> list[str]:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        return [row["key"] for row in csv.DictReader(handle)]


class ShardWriter:
    """Writes numbered shards into ``folder``, continuing after the highest number already there."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        numbers = _shard_numbers(self.folder)
        self._next = numbers[-1] + 1 if numbers else 0
        self.written = 0

    def paths(self, number: int) -> tuple[Path, Path]:
        stem = self.folder / f"{PREFIX}{number:05d}"
        return stem.with_suffix(".npy"), stem.with_suffix(".csv")

    def drop_uncommitted(self, committed: Callable[[Sequence[str]], set[str]]) -> None:
        """Remove the newest shard if it is incomplete or holds a key that ``committed`` does not
        report (a job killed between writing it and committing its chunk)."""
        numbers = _shard_numbers(self.folder)
        if not numbers:
            return
        npy, csv_path = self.paths(numbers[-1])
        if csv_path.exists() and npy.exists():
            keys = read_shard_keys(csv_path)
            if len(committed(keys)) == len(keys):
                return
        logger.info("removing shard %s: its chunk never reached the gallery", npy.stem)
        npy.unlink(missing_ok=True)
        csv_path.unlink(missing_ok=True)
        self._next = numbers[-1]

    def write(self, records: Sequence[ImageRecord], vectors: np.ndarray) -> Path:
        """Write one shard; returns the ``.npy`` path."""
        npy, csv_path = self.paths(self._next)

        def write_npy(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.save(handle, np.asarray(vectors, dtype=np.float32))

        def write_csv(tmp: Path) -> None:
            with tmp.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(COLUMNS)
                for r in records:
                    writer.writerow((r.key, r.path, r.person_id, r.camera_id, r.timestamp))

        _write_atomic(npy, write_npy)
        _write_atomic(csv_path, write_csv)
        self._next += 1
        self.written += 1
        return npy
