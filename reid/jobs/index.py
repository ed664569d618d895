"""Batch indexing: every image of a folder tree or manifest → embeddings in a gallery, resumably.

Pipeline: a loader thread decodes the next chunks while the model runs in the calling thread, and a
writer thread commits the previous chunk, so the model waits neither for decoding nor for the disk.

Resuming: keys the gallery already holds are skipped, and each chunk is committed with one gallery
write (atomic and durable), so a killed job loses at most the chunks in flight and a re-run adds each
missing key exactly once. Images that cannot be decoded are logged (one ``path<TAB>reason`` line each)
and counted; they never stop the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from reid.datasets import ImageRecord, discover_source
from reid.engine import Extractor
from reid.errors import ConfigError
from reid.gallery import GalleryItem, GalleryStore, open_gallery
from reid.jobs.pipeline import ChunkResult, Failure, embed_stream
from reid.jobs.shards import ShardWriter
from reid.preprocess import Preprocessor

logger = logging.getLogger(__name__)

FAILURE_LOG = "index-failures.log"
DEFAULT_CHUNK_SIZE = 256


@dataclass(frozen=True)
class IndexSummary:
    """What a run did. ``skipped``: already in the gallery; ``failure_log`` is ``None`` when nothing
    failed; ``seconds`` covers the whole run (opening the gallery included)."""

    total: int
    indexed: int
    skipped: int
    failed: int
    seconds: float
    gallery_count: int
    failure_log: Path | None = None

    @property
    def images_per_s(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        failed = f"failed {self.failed}" + (f" (reasons in {self.failure_log})" if self.failure_log else "")
        return (
            f"indexed {self.indexed}, skipped {self.skipped} already indexed, {failed}; "
            f"{self.seconds:.1f} s, {self.images_per_s:.1f} img/s; gallery holds {self.gallery_count} items"
        )


def indexed_keys(gallery: GalleryStore, keys: Sequence[str]) -> set[str]:
    """The subset of ``keys`` that ``gallery`` holds."""
    if not keys or gallery.count() == 0:
        return set()
    return gallery.existing_keys(keys)


def _items(result: ChunkResult) -> list[GalleryItem]:
    return [
        GalleryItem(
            vector=vector,
            key=record.key,
            person_id=record.person_id,
            camera_id=record.camera_id,
            source=str(record.path),
            timestamp=record.timestamp,
            metadata=dict(record.metadata),
        )
        for record, vector in zip(result.records, result.vectors, strict=True)
    ]


def _log_failures(path: Path, failures: Sequence[Failure]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.writelines(f"{failure.record.path}\t{failure.reason}\n" for failure in failures)
    for failure in failures:
        logger.debug("skipping %s: %s", failure.record.path, failure.reason)


def _records_of(source: str | Path | Sequence[ImageRecord]) -> list[ImageRecord]:
    if isinstance(source, str | Path):
        return discover_source(source)
    records = list(source)
    seen: set[str] = set()
    for record in records:
        if record.key in seen:
            raise ConfigError(f"key {record.key!r} appears twice in the source")
        seen.add(record.key)
    return records


def index_source(
    source: str | Path | Sequence[ImageRecord],
    gallery_dir: str | Path,
    extractor: Extractor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    workers: int | None = None,
    resume: bool = True,
    shard_dir: str | Path | None = None,
    progress: bool = True,
    log_path: str | Path | None = None,
    prefetch: int = 2,
) -> IndexSummary:
    """Embed ``source`` (a folder, a CSV/JSONL manifest, or records) into the gallery at ``gallery_dir``.

    The gallery is created when missing and must otherwise hold this extractor's model. ``workers``
    decode threads (default: the extractor's own pool) prepare the next ``prefetch`` chunks of
    ``chunk_size`` images while the model runs, and a writer thread commits the previous chunk with
    one gallery write. ``resume=False`` re-embeds every image and replaces the stored items.
    ``shard_dir``: also write each chunk as ``.npy`` + ``.csv`` (see :mod:`reid.jobs.shards`).
    Failures go to ``log_path`` (default ``gallery_dir/index-failures.log``, rewritten by each run).
    """
    started = time.perf_counter()
    records = _records_of(source)
    log = Path(log_path) if log_path is not None else Path(gallery_dir) / FAILURE_LOG
    indexed = failed = 0
    with ExitStack() as stack:
        gallery = stack.enter_context(
            open_gallery(gallery_dir, dim=extractor.dim, fingerprint=extractor.fingerprint)
        )
        done = indexed_keys(gallery, [record.key for record in records]) if resume else set()
        pending = [record for record in records if record.key not in done]
        logger.info("%d images: %d already indexed, %d to do", len(records), len(done), len(pending))
        shards = ShardWriter(shard_dir) if shard_dir is not None else None
        if shards is not None and resume:
            shards.drop_uncommitted(lambda keys: indexed_keys(gallery, keys))
        log.unlink(missing_ok=True)
        decoder = None
        if workers is not None:
            decoder = stack.enter_context(Preprocessor(extractor.preprocess, workers=workers))
        write = gallery.add if resume else gallery.upsert

        def commit(result: ChunkResult) -> None:
            if result.records:
                if shards is not None:
                    shards.write(result.records, result.vectors)
                write(_items(result), fingerprint=extractor.fingerprint)
            if result.failures:
                _log_failures(log, result.failures)

        # Commits run in order on one writer thread, so the model does not wait for the disk.
        writer = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="reid-writer"))
        bar = stack.enter_context(
            tqdm(total=len(pending), unit="img", desc="index", disable=None if progress else True)
        )
        committing: Future[None] | None = None
        for result in embed_stream(
            pending, extractor, chunk_size=chunk_size, decoder=decoder, prefetch=prefetch
        ):
            if committing is not None:
                committing.result()  # one commit in flight at most; re-raises its error
            committing = writer.submit(commit, result)
            indexed += len(result.records)
            if result.failures:
                failed += len(result.failures)
                bar.set_postfix(failed=failed)
            bar.update(len(result.records) + len(result.failures))
        if committing is not None:
            committing.result()
        count = gallery.count()
    summary = IndexSummary(
        total=len(records),
        indexed=indexed,
        skipped=len(done),
        failed=failed,
        seconds=time.perf_counter() - started,
        gallery_count=count,
        failure_log=log if failed else None,
    )
    logger.info("%s", summary.describe())
    return summary
