"""`reid search IMAGE... --gallery DIR`: embed query pictures and list their nearest gallery items."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from reid.cli.common import add_backend_arguments, add_engine_arguments, extractor_from_args, gallery_spec
from reid.cli.embed import collect
from reid.cli.filters import add_filter_arguments, filters_from_args
from reid.datasets import ImageRecord, match_market_name
from reid.embeddings import aggregate_groups
from reid.engine import Extractor
from reid.errors import ConfigError
from reid.evaluation import IndexEntry, render_ranked_list, write_html_index
from reid.gallery import Filters, Hit, RerankConfig
from reid.gallery.core import GROUP_FIELDS
from reid.jobs import Failure, embed_stream


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "search", help="find gallery items that look like query images"
    )
    p.add_argument("images", nargs="+", help="query image files, folders (recursive) or CSV/JSONL manifests")
    p.add_argument("--gallery", required=True, help="gallery folder, or a Milvus URI/file (--backend milvus)")
    add_backend_arguments(p)
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument(
        "--exclude-same-camera",
        action="store_true",
        help="drop gallery items from the query's camera (when known from its name or manifest)",
    )
    add_filter_arguments(p)
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking of each query's top 100")
    p.add_argument(
        "--track",
        action="store_true",
        help="the query images are one track: search once with their aggregated embedding (a manifest's "
        "track_id column makes one query per track)",
    )
    p.add_argument(
        "--group-by",
        choices=GROUP_FIELDS,
        help="collapse hits by track or person: k different tracks or people, each by its best crop",
    )
    p.add_argument("--min-score", type=float, help="drop hits scoring below this")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--visualize",
        type=Path,
        metavar="OUT_DIR",
        help="write one PNG strip per query and an index.html (green: same person as the query)",
    )
    add_engine_arguments(p)
    p.set_defaults(func=run)


def query_labels(record: ImageRecord) -> tuple[int | None, int | None]:
    """The query's person and camera: from its source, else from a Market-1501 style file name."""
    parsed = match_market_name(record.path.name)
    person, camera = record.person_id, record.camera_id
    if parsed is not None:
        person = parsed.person_id if person is None else person
        camera = parsed.camera_id if camera is None else camera
    return person, camera


def _embed(
    extractor: Extractor, records: list[ImageRecord], chunk_size: int
) -> tuple[list[ImageRecord], np.ndarray, list[Failure]]:
    kept: list[ImageRecord] = []
    rows = [np.empty((0, extractor.dim), dtype=np.float32)]
    failures: list[Failure] = []
    for result in embed_stream(records, extractor, chunk_size=chunk_size):
        kept += result.records
        rows.append(result.vectors)
        failures += result.failures
    return kept, np.concatenate(rows), failures


def _tracks(queries: list[ImageRecord], vectors: np.ndarray) -> tuple[list[ImageRecord], np.ndarray]:
    """One query per track (the manifest's track_id; without one, all the images are one track), each
    standing for its track's first crop, with the track's aggregated embedding."""
    labels = [query.track_id or "" for query in queries]
    keys, matrix = aggregate_groups(vectors, labels)
    first = {label: query for label, query in reversed(list(zip(labels, queries, strict=True)))}
    return [first[str(key)] for key in keys], matrix


def _filters(queries: list[ImageRecord], args: argparse.Namespace) -> Filters | list[Filters]:
    """The filter flags, and with ``--exclude-same-camera`` each query's own camera excluded."""
    common = filters_from_args(args)
    if not args.exclude_same_camera:
        return common
    if common.exclude_camera is not None:
        raise ConfigError("give --exclude-camera or --exclude-same-camera, not both")
    return [replace(common, exclude_camera=query_labels(query)[1]) for query in queries]


def _print_text(queries: list[ImageRecord], results: list[list[Hit]]) -> None:
    for query, hits in zip(queries, results, strict=True):
        person, camera = query_labels(query)
        print(f"{query.path} (person {person}, camera {camera})")
        for rank, hit in enumerate(hits, start=1):
            print(
                f"  {rank:>3}  {hit.score:.4f}  {hit.key}  person {hit.person_id}  camera {hit.camera_id}"
                f"  {hit.source or ''}"
            )


def _draw(out_dir: Path, queries: list[ImageRecord], results: list[list[Hit]]) -> Path:
    entries = []
    for number, (query, hits) in enumerate(zip(queries, results, strict=True), start=1):
        person, camera = query_labels(query)
        matches = [person is not None and hit.person_id == person for hit in hits]
        png = render_ranked_list(
            query.path,
            [hit.source or "" for hit in hits],
            matches,
            out_dir / f"{number:04d}_{query.path.stem}.png",
            scores=[hit.score for hit in hits],
        )
        label = f"person {person}, camera {camera}" if person is not None else "person unknown (all red)"
        entries.append(IndexEntry(png.name, f"{query.path}: {label} (labels: rank and similarity)"))
    return write_html_index(out_dir, entries, title="reid search")


def run(args: argparse.Namespace) -> int:
    spec = gallery_spec(args.gallery, args, existing=True)
    records = collect(args.images)
    rerank = RerankConfig() if args.rerank else None
    with spec.open(read_only=True) as gallery:
        extractor = extractor_from_args(args)
        try:
            queries, vectors, failures = _embed(extractor, records, extractor.options.max_batch_size)
        finally:
            extractor.close()
        for failure in failures:
            print(f"skipped {failure.record.path}: {failure.reason}", file=sys.stderr)
        if not queries:
            raise ConfigError("no query image could be read")
        if args.track:
            queries, vectors = _tracks(queries, vectors)
        results = gallery.search(
            vectors,
            k=args.k,
            filters=_filters(queries, args),
            fingerprint=extractor.fingerprint,
            rerank=rerank,
            group_by=args.group_by,
            min_score=args.min_score,
        )
    if args.json:
        records_out = [
            {"query": str(query.path), "hits": [hit.as_dict() for hit in hits]}
            for query, hits in zip(queries, results, strict=True)
        ]
        print(json.dumps(records_out, indent=2))
    else:
        _print_text(queries, results)
    if args.visualize is not None:
        print(
            f"pictures: {_draw(args.visualize, queries, results)}",
            file=sys.stderr if args.json else sys.stdout,
        )
    return 1 if failures else 0
