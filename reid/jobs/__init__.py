"""Batch jobs over many images: resumable gallery indexing (in this process, or on Ray), and the pure
per-chunk unit of work."""

from reid.jobs.index import (
    DEFAULT_CHUNK_SIZE,
    FAILURE_LOG,
    IndexRun,
    IndexSummary,
    index_source,
    indexed_keys,
    open_index_run,
)
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
from reid.jobs.ray_index import index_source_ray
from reid.jobs.shards import ShardWriter

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FAILURE_LOG",
    "ChunkResult",
    "Decoder",
    "Failure",
    "IndexRun",
    "IndexSummary",
    "PreparedChunk",
    "ShardWriter",
    "embed_chunk",
    "embed_prepared",
    "embed_stream",
    "index_source",
    "index_source_ray",
    "indexed_keys",
    "open_index_run",
    "prepare_chunk",
]
