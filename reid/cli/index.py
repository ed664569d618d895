"""`reid index SOURCE --gallery DIR|URI`: embed a folder tree or manifest into a gallery, resumably, in this
process or on a Ray cluster (``--engine ray``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reid.cli.common import (
    add_backend_arguments,
    add_engine_arguments,
    engine_options_from_args,
    extractor_from_args,
    gallery_spec,
    weights_from_args,
)
from reid.errors import ConfigError
from reid.gallery import GallerySpec
from reid.jobs import DEFAULT_CHUNK_SIZE, IndexSummary, index_source, index_source_ray

ENGINES = ("local", "ray")
RAY_ONLY = ("ray_address", "replicas", "gpus_per_replica", "cpus_per_replica")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "index",
        help="embed a folder or manifest into a gallery (resumable)",
        description="Embed every image of SOURCE into the gallery (a FAISS folder, or a Milvus URI or "
        "milvus-lite file with --backend milvus). Re-running skips the keys the gallery already holds, so an "
        "interrupted run continues where it stopped. Unreadable images are listed in index-failures.log "
        "(in the gallery folder; the current folder for a Milvus server) and never stop the job. "
        "--engine ray decodes in Ray tasks and embeds with a pool of model replicas (one per GPU), while "
        "this process writes the gallery.",
    )
    p.add_argument("source", type=Path, help="folder tree (Market-1501 names parsed) or CSV/JSONL manifest")
    p.add_argument(
        "--gallery", required=True, help="gallery folder or Milvus URI/file (created when missing)"
    )
    add_backend_arguments(p)
    p.add_argument(
        "--index",
        help="index of a new gallery: FAISS factory string (Flat, IVF4096,Flat...) or Milvus index type "
        "(FLAT, IVF_FLAT, HNSW); an existing gallery keeps its own",
    )
    p.add_argument(
        "--failure-log",
        type=Path,
        metavar="FILE",
        help="where unreadable images are listed (default: index-failures.log in the gallery folder, "
        "or in the current folder for a Milvus server)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"images decoded and committed together (default {DEFAULT_CHUNK_SIZE})",
    )
    p.add_argument("--workers", type=int, help="decode threads, local engine (default: min(8, CPU count))")
    p.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="re-embed every image and replace the stored items",
    )
    p.add_argument("--shards", type=Path, metavar="DIR", help="also write embeddings-NNNNN.npy/.csv here")
    add_engine_arguments(p)
    p.add_argument("--engine", choices=ENGINES, default="local", help="local (this process; default) or ray")
    ray = p.add_argument_group("--engine ray (needs the ray extra)")
    ray.add_argument(
        "--ray-address", metavar="ADDRESS", help="cluster to join (default: RAY_ADDRESS, else a local Ray)"
    )
    ray.add_argument(
        "--replicas", type=int, help="model replicas (default: one per GPU of the cluster, else 1)"
    )
    ray.add_argument(
        "--gpus-per-replica", type=float, help="GPUs each replica holds (default 1 with GPUs, else 0)"
    )
    ray.add_argument("--cpus-per-replica", type=float, help="CPUs each replica holds (default 1)")
    p.set_defaults(func=run)


def _local(args: argparse.Namespace, gallery: GallerySpec) -> IndexSummary:
    given = [f"--{name.replace('_', '-')}" for name in RAY_ONLY if getattr(args, name) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} apply to --engine ray only")
    extractor = extractor_from_args(args)
    try:
        return index_source(
            args.source,
            gallery,
            extractor,
            chunk_size=args.chunk_size,
            workers=args.workers,
            resume=args.resume,
            shard_dir=args.shards,
            log_path=args.failure_log,
        )
    finally:
        extractor.close()


def _ray(args: argparse.Namespace, gallery: GallerySpec) -> IndexSummary:
    if args.workers is not None:
        raise ConfigError("--workers applies to the local engine; Ray runs one decode task per CPU")
    return index_source_ray(
        args.source,
        gallery,
        weights_from_args(args),
        engine_options_from_args(args),
        chunk_size=args.chunk_size,
        replicas=args.replicas,
        gpus_per_replica=args.gpus_per_replica,
        cpus_per_replica=1.0 if args.cpus_per_replica is None else args.cpus_per_replica,
        resume=args.resume,
        shard_dir=args.shards,
        log_path=args.failure_log,
        address=args.ray_address,
    )


def run(args: argparse.Namespace) -> int:
    gallery = gallery_spec(args.gallery, args, existing=False, index=args.index)
    summary = _ray(args, gallery) if args.engine == "ray" else _local(args, gallery)
    print(summary.describe())
    return 1 if summary.failed else 0
