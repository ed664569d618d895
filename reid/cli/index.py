"""`reid index SOURCE --gallery DIR`: embed a folder tree or manifest into a gallery, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reid.cli.common import add_engine_arguments, extractor_from_args
from reid.jobs import DEFAULT_CHUNK_SIZE, index_source


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "index",
        help="embed a folder or manifest into a gallery (resumable)",
        description="Embed every image of SOURCE into the gallery DIR. Re-running skips the keys the "
        "gallery already holds, so an interrupted run continues where it stopped. Unreadable images "
        "are listed in DIR/index-failures.log and never stop the job.",
    )
    p.add_argument("source", type=Path, help="folder tree (Market-1501 names parsed) or CSV/JSONL manifest")
    p.add_argument("--gallery", type=Path, required=True, help="gallery directory (created when missing)")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"images decoded and committed together (default {DEFAULT_CHUNK_SIZE})",
    )
    p.add_argument("--workers", type=int, help="decode threads (default: min(8, CPU count))")
    p.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="re-embed every image and replace the stored items",
    )
    p.add_argument("--shards", type=Path, metavar="DIR", help="also write embeddings-NNNNN.npy/.csv here")
    add_engine_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extractor = extractor_from_args(args)
    try:
        summary = index_source(
            args.source,
            args.gallery,
            extractor,
            chunk_size=args.chunk_size,
            workers=args.workers,
            resume=args.resume,
            shard_dir=args.shards,
        )
    finally:
        extractor.close()
    print(summary.describe())
    return 1 if summary.failed else 0
