"""Batch indexing: every image of a folder tree or manifest → embeddings in a gallery, resumably.

Pipeline: a loader thread decodes the next chunks while the model runs in the calling thread, and a
writer thread commits the previous chunk, so the model waits neither for decoding nor for the disk.

Resuming: keys the gallery already holds are skipped, and each chunk is committed with one gallery
write (atomic and durable), so a killed job loses at most the chunks in flight and a re-run adds each
missing key exactly once. Images that cannot be decoded are logged (one ``path<TAB>reason`` line each)
and counted; they never stop the job.

The gallery side of a run (:func:`open_index_run`, :class:`IndexRun`) is shared with the Ray job
(:mod:`reid.jobs.ray_index`), so both skip, write, log and count the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from reid.datasets import ImageRecord, discover_source
from reid.engine import Extractor
from reid.errors import ConfigError
from reid.gallery import GalleryItem, GallerySpec, GalleryStore
from reid.gallery.items import fields_of
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
    """The gallery items of a chunk: every item field the records carry, and the image path as source."""
    return [
        GalleryItem(vector=vector, **{**fields_of(record), "source": str(record.path)})
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


class IndexRun:
    """The gallery side of one indexing run, shared by the local and the Ray job: the records still to
    embed, one gallery write per chunk (with its shard and failure-log lines), counts and progress.

    Open it with :func:`open_index_run`. :meth:`commit` may run on a writer thread while :meth:`advance`
    (counts, progress bar) runs on the caller's.
    """

    def __init__(
        self,
        store: GalleryStore,
        *,
        records: list[ImageRecord],
        done: set[str],
        fingerprint: str,
        resume: bool,
        log: Path,
        shards: ShardWriter | None,
        bar: tqdm[Any],
        started: float,
    ) -> None:
        self._store = store
        self.records = records
        self.pending = [record for record in records if record.key not in done]
        self.skipped = len(done)
        self.indexed = self.failed = 0
        self._fingerprint = fingerprint
        self._write = store.add if resume else store.upsert
        self._log = log
        self._shards = shards
        self._bar = bar
        self._started = started

    def commit(self, result: ChunkResult) -> None:
        """Store one embedded chunk with one gallery write (its shard first) and log its failures."""
        if result.records:
            if self._shards is not None:
                self._shards.write(result.records, result.vectors)
            self._write(_items(result), fingerprint=self._fingerprint)
        if result.failures:
            _log_failures(self._log, result.failures)

    def advance(self, result: ChunkResult) -> None:
        """Count a chunk as done and move the progress bar."""
        self.indexed += len(result.records)
        if result.failures:
            self.failed += len(result.failures)
            self._bar.set_postfix(failed=self.failed)
        self._bar.update(len(result.records) + len(result.failures))

    def finish(self) -> IndexSummary:
        """The run's summary, once every chunk is committed."""
        summary = IndexSummary(
            total=len(self.records),
            indexed=self.indexed,
            skipped=self.skipped,
            failed=self.failed,
            seconds=time.perf_counter() - self._started,
            gallery_count=self._store.count(),
            failure_log=self._log if self.failed else None,
        )
        logger.info("%s", summary.describe())
        return summary


@contextmanager
def open_index_run(
    source: str | Path | Sequence[ImageRecord],
    gallery: str | Path | GallerySpec,
    *,
    dim: int,
    fingerprint: str,
    resume: bool = True,
    shard_dir: str | Path | None = None,
    log_path: str | Path | None = None,
    progress: bool = True,
) -> Iterator[IndexRun]:
    """List ``source``, open (or create) ``gallery`` for this model and find what is left to do.

    With ``resume``, keys the gallery holds are skipped and a shard whose chunk never reached the gallery
    is removed. The failure log (default ``index-failures.log`` in ``GallerySpec.local_dir``) is
    rewritten by each run. The gallery closes when the block ends.
    """
    started = time.perf_counter()
    records = _records_of(source)
    spec = gallery if isinstance(gallery, GallerySpec) else GallerySpec(gallery)
    log = Path(log_path) if log_path is not None else spec.local_dir / FAILURE_LOG
    with spec.open(dim=dim, fingerprint=fingerprint) as store:
        done = indexed_keys(store, [record.key for record in records]) if resume else set()
        total = len(records) - len(done)
        logger.info("%d images: %d already indexed, %d to do", len(records), len(done), total)
        shards = ShardWriter(shard_dir) if shard_dir is not None else None
        if shards is not None and resume:
            shards.drop_uncommitted(lambda keys: indexed_keys(store, keys))
        log.unlink(missing_ok=True)
        with tqdm(total=total, unit="img", desc="index", disable=None if progress else True) as bar:
            yield IndexRun(
                store,
                records=records,
                done=done,
                fingerprint=fingerprint,
                resume=resume,
                log=log,
                shards=shards,
                bar=bar,
                started=started,
            )


def index_source(
    source: str | Path | Sequence[ImageRecord],
    gallery: str | Path | GallerySpec,
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
    """Embed ``source`` (a folder, a CSV/JSONL manifest, or records) into ``gallery`` (a FAISS gallery
    folder, or a :class:`GallerySpec` for any backend).

    The gallery is created when missing and must otherwise hold this extractor's model. ``workers``
    decode threads (default: the extractor's own pool) prepare the next ``prefetch`` chunks of
    ``chunk_size`` images while the model runs, and a writer thread commits the previous chunk with
    one gallery write. ``resume=False`` re-embeds every image and replaces the stored items.
    ``shard_dir``: also write each chunk as ``.npy`` + ``.csv`` (see :mod:`reid.jobs.shards`).
    Failures go to ``log_path`` (default ``index-failures.log`` in ``GallerySpec.local_dir``, rewritten
    by each run).
    """
    with (
        open_index_run(
            source,
            gallery,
            dim=extractor.dim,
            fingerprint=extractor.fingerprint,
            resume=resume,
            shard_dir=shard_dir,
            log_path=log_path,
            progress=progress,
        ) as run,
        ExitStack() as stack,
    ):
        decoder = None
        if workers is not None:
            decoder = stack.enter_context(Preprocessor(extractor.preprocess, workers=workers))
        # Commits run in order on one writer thread, so the model does not wait for the disk.
        writer = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="reid-writer"))
        committing: Future[None] | None = None
        for result in embed_stream(
            run.pending, extractor, chunk_size=chunk_size, decoder=decoder, prefetch=prefetch
        ):
            if committing is not None:
                committing.result()  # one commit in flight at most; re-raises its error
            committing = writer.submit(run.commit, result)
            run.advance(result)
        if committing is not None:
            committing.result()
        return run.finish()
