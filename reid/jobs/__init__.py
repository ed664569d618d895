"""Batch jobs over many images: resumable gallery indexing, and the pure per-chunk unit of work."""

from reid.jobs.index import DEFAULT_CHUNK_SIZE, FAILURE_LOG, IndexSummary, index_source, indexed_keys
from reid.jobs.pipeline import (
    ChunkResult,
    Decoder,
    Failure,
    PreparedChunk,
    embed_chunk,
    embed_prepared,
    embed_stream,
    prepare_chunk,
)
from reid.jobs.shards import ShardWriter

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FAILURE_LOG",
    "ChunkResult",
    "Decoder",
    "Failure",
    "IndexSummary",
    "PreparedChunk",
    "ShardWriter",
    "embed_chunk",
    "embed_prepared",
    "embed_stream",
    "index_source",
    "indexed_keys",
    "prepare_chunk",
]
