"""The per-chunk work of batch jobs: records → decoded pixels → embeddings, and a prefetching stream.

:func:`embed_chunk` is a pure function of its records and the model (no gallery, no files written), so
the same unit of work can run in this process (:func:`embed_stream`) or be mapped over a distributed
dataset later, e.g. Ray Data ``map_batches`` with one :class:`reid.engine.Extractor` per actor.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

import numpy as np
import torch

from reid.datasets import ImageRecord
from reid.engine import Extractor
from reid.errors import ConfigError, InvalidImage, ReidError
from reid.preprocess import ImageSource

logger = logging.getLogger(__name__)


class Decoder(Protocol):
    """What decodes a chunk: :class:`reid.preprocess.Preprocessor` or :class:`reid.engine.Extractor`."""

    def prepare_many(self, images: Sequence[ImageSource], /) -> list[torch.Tensor | ReidError]: ...


@dataclass(frozen=True)
class Failure:
    """An image that could not be embedded, and why (``code: message``)."""

    record: ImageRecord
    reason: str


def describe_error(error: ReidError) -> str:
    """``code: message``, without the position-in-chunk prefix that :class:`InvalidImage` adds."""
    message = str(error)
    if isinstance(error, InvalidImage) and error.index is not None:
        message = message.removeprefix(f"image {error.index}: ")
    return f"{error.code}: {message}"


@dataclass(frozen=True, eq=False)
class PreparedChunk:
    """A decoded chunk: ``pixels`` (uint8, N×3×H×W; empty when N = 0) for ``records``, in order; bad
    images apart."""

    records: tuple[ImageRecord, ...]
    pixels: torch.Tensor
    failures: tuple[Failure, ...]


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """Embeddings (float32, N×dim, L2-normalised) of ``records``, in order; bad images apart."""

    records: tuple[ImageRecord, ...]
    vectors: np.ndarray
    failures: tuple[Failure, ...]

    @property
    def keys(self) -> list[str]:
        return [record.key for record in self.records]


def prepare_chunk(records: Sequence[ImageRecord], decoder: Decoder) -> PreparedChunk:
    """Decode and resize ``records``; unreadable images become :class:`Failure` entries."""
    prepared = decoder.prepare_many([record.path for record in records])
    good: list[tuple[ImageRecord, torch.Tensor]] = []
    failures: list[Failure] = []
    for record, item in zip(records, prepared, strict=True):
        if isinstance(item, ReidError):
            failures.append(Failure(record, describe_error(item)))
        else:
            good.append((record, item))
    pixels = torch.stack([tensor for _, tensor in good]) if good else torch.empty(0, dtype=torch.uint8)
    return PreparedChunk(tuple(record for record, _ in good), pixels, tuple(failures))


def embed_prepared(chunk: PreparedChunk, extractor: Extractor) -> ChunkResult:
    """Run the model on a decoded chunk."""
    if not chunk.records:
        vectors = np.empty((0, extractor.dim), dtype=np.float32)
    else:
        vectors = extractor.embed_batch(chunk.pixels)
    return ChunkResult(chunk.records, vectors, chunk.failures)


def embed_chunk(records: Sequence[ImageRecord], extractor: Extractor) -> ChunkResult:
    """Paths → embeddings for one chunk, decoding on the extractor's own threads."""
    return embed_prepared(prepare_chunk(records, extractor), extractor)


def embed_stream(
    records: Sequence[ImageRecord],
    extractor: Extractor,
    *,
    chunk_size: int,
    decoder: Decoder | None = None,
    prefetch: int = 2,
) -> Generator[ChunkResult, None, None]:
    """Embed ``records`` chunk by chunk, in order, decoding ahead while the model runs.

    A loader thread decodes up to ``prefetch`` chunks ahead of the one in the model (``decoder``'s
    worker threads do the decoding: Pillow releases the GIL); the model runs in the caller's thread.
    Stopping the iteration early cancels the chunks not yet decoded.
    """
    if chunk_size < 1 or prefetch < 1:
        raise ConfigError(f"chunk_size and prefetch must be >= 1, got {chunk_size} and {prefetch}")
    source: Decoder = decoder if decoder is not None else extractor
    chunks = (records[start : start + chunk_size] for start in range(0, len(records), chunk_size))
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reid-loader")
    try:
        pending: deque[Future[PreparedChunk]] = deque(
            loader.submit(prepare_chunk, chunk, source) for chunk in islice(chunks, prefetch)
        )
        while pending:
            prepared = pending.popleft().result()
            following = next(chunks, None)
            if following is not None:
                pending.append(loader.submit(prepare_chunk, following, source))
            yield embed_prepared(prepared, extractor)
    finally:
        loader.shutdown(wait=True, cancel_futures=True)
