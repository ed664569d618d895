"""`reid gallery stats|search|delete|export GALLERY`: inspect and maintain a gallery (FAISS or Milvus)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from reid.cli.common import add_backend_arguments, gallery_spec
from reid.cli.filters import add_filter_arguments, filters_from_args
from reid.errors import ConfigError
from reid.gallery import FaissSearchParams, GalleryStore, Hit, RerankConfig


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("gallery", help="inspect and maintain a gallery")
    commands = p.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")

    stats = commands.add_parser("stats", help="size, model fingerprint, index kind, disk use")
    stats.add_argument("gallery", help="gallery folder, or Milvus URI/file with --backend milvus")
    add_backend_arguments(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=run_stats)

    search = commands.add_parser("search", help="nearest gallery items for query vectors")
    search.add_argument("gallery", help="gallery folder, or Milvus URI/file with --backend milvus")
    add_backend_arguments(search)
    search.add_argument("--vector-file", type=Path, required=True, help=".npy with one (D,) or Q rows (Q, D)")
    search.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    add_filter_arguments(search)
    search.add_argument("--nprobe", type=int, help="IVF lists to visit (FAISS backend)")
    search.add_argument("--ef-search", type=int, help="HNSW search breadth (FAISS backend)")
    search.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, λ=0.3)")
    search.add_argument("--json", action="store_true", help="print JSON (one list of hits per query)")
    search.set_defaults(func=run_search)

    delete = commands.add_parser("delete", help="remove items by id and/or key")
    delete.add_argument("gallery", help="gallery folder, or Milvus URI/file with --backend milvus")
    add_backend_arguments(delete)
    delete.add_argument("ids", type=int, nargs="*", metavar="ID", help="gallery ids")
    delete.add_argument("--key", action="append", default=[], metavar="KEY", help="item key (repeatable)")
    delete.set_defaults(func=run_delete)

    export = commands.add_parser("export", help="write vectors.npy, items.jsonl and gallery.json")
    export.add_argument("gallery", help="gallery folder, or Milvus URI/file with --backend milvus")
    add_backend_arguments(export)
    export.add_argument("out", type=Path, help="output directory (created; must not hold an export)")
    export.set_defaults(func=run_export)


def _open(args: argparse.Namespace, *, read_only: bool) -> GalleryStore:
    return gallery_spec(args.gallery, args, existing=True).open(read_only=read_only)


def run_stats(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as gallery:
        stats = gallery.stats().as_dict()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        rows = {**{name: value for name, value in stats.items() if name != "details"}, **stats["details"]}
        width = max(map(len, rows))
        print("\n".join(f"{name:<{width}}  {value}" for name, value in rows.items()))
    return 0


def _print_table(results: list[list[Hit]]) -> None:
    for query, hits in enumerate(results):
        print(f"query {query}")
        print(f"{'rank':>4} {'id':>8} {'score':>8} {'person':>7} {'camera':>6}  key / source")
        for rank, hit in enumerate(hits, start=1):
            person = "-" if hit.person_id is None else hit.person_id
            camera = "-" if hit.camera_id is None else hit.camera_id
            label = hit.key or hit.source or ""
            print(f"{rank:>4} {hit.id:>8} {hit.score:>8.4f} {person:>7} {camera:>6}  {label}")


def run_search(args: argparse.Namespace) -> int:
    try:
        queries = np.load(args.vector_file, allow_pickle=False)
    except ValueError as exc:
        raise ConfigError(f"{args.vector_file}: not a numeric .npy file: {exc}") from exc
    if queries.ndim == 1:
        queries = queries[None, :]
    rerank = RerankConfig() if args.rerank else None
    knobs = None
    if args.nprobe is not None or args.ef_search is not None:
        knobs = FaissSearchParams(nprobe=args.nprobe, ef_search=args.ef_search)
    with _open(args, read_only=True) as gallery:
        results = gallery.search(queries, args.k, filters_from_args(args), rerank=rerank, params=knobs)
    if args.json:
        print(json.dumps([[hit.as_dict() for hit in hits] for hits in results], indent=2))
    else:
        _print_table(results)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    if not args.ids and not args.key:
        raise ConfigError("give gallery ids and/or --key KEY to delete")
    with _open(args, read_only=False) as gallery:
        ids = sorted({*args.ids, *gallery.lookup(args.key)})
        gallery.delete(ids)
        remaining = gallery.count()
    print(f"deleted {len(ids)} item(s); {remaining} left")
    return 0


def run_export(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as gallery:
        out = gallery.export(args.out)
        count = gallery.count()
    print(f"exported {count} item(s) to {out}")
    return 0
