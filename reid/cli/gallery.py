"""`reid gallery stats|search|delete|retention|export GALLERY`: inspect and maintain a gallery (FAISS or
Milvus)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from reid.cli.common import add_backend_arguments, gallery_spec
from reid.cli.filters import add_filter_arguments, filters_from_args
from reid.errors import ConfigError
from reid.gallery import (
    FaissSearchParams,
    Filters,
    GalleryStore,
    Hit,
    RerankConfig,
    RetentionPolicy,
    StoreOptions,
)
from reid.gallery.retention import RETENTION_CLOCKS

DELETE_DESCRIPTION = """\
Remove items by id or --key, or erase every item the filter flags all match (one or the other per call).
Deleted items leave searches and reads at once and their bytes leave the gallery's files at the next
checkpoint and snapshot; an erasure by filter also removes their bytes from the files at once."""
RETENTION_DESCRIPTION = """\
Show, set or remove the retention policy kept with the gallery. Every process that opens the gallery for
writing applies it as it opens (this command does not: it changes the policy first); what a policy
erases leaves the gallery's files at once. Showing and --dry-run change nothing."""


def _action(commands: Any, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A ``reid gallery`` action: it takes the gallery and the backend flags first."""
    action: argparse.ArgumentParser = commands.add_parser(name, help=help, description=description)
    action.add_argument("gallery", help="gallery folder, or Milvus URI/file with --backend milvus")
    add_backend_arguments(action)
    return action


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("gallery", help="inspect and maintain a gallery")
    commands = p.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")

    stats = _action(commands, "stats", "size, model fingerprint, index kind, disk use, retention")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=run_stats)

    search = _action(commands, "search", "nearest gallery items for query vectors")
    search.add_argument("--vector-file", type=Path, required=True, help=".npy with one (D,) or Q rows (Q, D)")
    search.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    add_filter_arguments(search)
    search.add_argument("--nprobe", type=int, help="IVF lists to visit (FAISS backend)")
    search.add_argument("--ef-search", type=int, help="HNSW search breadth (FAISS backend)")
    search.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, λ=0.3)")
    search.add_argument("--json", action="store_true", help="print JSON (one list of hits per query)")
    search.set_defaults(func=run_search)

    delete = _action(
        commands, "delete", "remove items by id or key, or erase what a filter matches", DELETE_DESCRIPTION
    )
    delete.add_argument("ids", type=int, nargs="*", metavar="ID", help="gallery ids")
    delete.add_argument("--key", action="append", default=[], metavar="KEY", help="item key (repeatable)")
    add_filter_arguments(delete, "erase by filter (every item that all the given ones match)")
    delete.add_argument(
        "--dry-run", action="store_true", help="print how many items would go; change nothing"
    )
    delete.set_defaults(func=run_delete, trailing_ints="ids")

    retention = _action(
        commands, "retention", "show, set or remove how long the gallery keeps items", RETENTION_DESCRIPTION
    )
    change = retention.add_mutually_exclusive_group()
    change.add_argument(
        "--days",
        type=float,
        metavar="N",
        help="keep items N days: store the policy and erase what it expired",
    )
    change.add_argument("--off", action="store_true", help="remove the policy: keep items until deleted")
    retention.add_argument(
        "--by",
        choices=RETENTION_CLOCKS,
        help="with --days: count from when an item was stored (inserted, the default) or taken "
        "(captured: its timestamp, else when it was stored)",
    )
    retention.add_argument(
        "--dry-run",
        action="store_true",
        help="print how many items the kept policy (or --days N, not stored) would erase; change nothing",
    )
    retention.set_defaults(func=run_retention)

    export = _action(commands, "export", "write vectors.npy, items.jsonl and gallery.json")
    export.add_argument("out", type=Path, help="output directory (created; must not hold an export)")
    export.set_defaults(func=run_export)


def _open(args: argparse.Namespace, *, read_only: bool, sweep_on_open: bool = True) -> GalleryStore:
    store = StoreOptions(sweep_on_open=sweep_on_open)
    return gallery_spec(args.gallery, args, existing=True).open(read_only=read_only, store=store)


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
    filters = filters_from_args(args)
    by_id = bool(args.ids or args.key)
    if by_id and not filters.is_empty:
        raise ConfigError("delete by ids/--key or erase by filter flags, not both in one call")
    if not by_id and filters.is_empty:
        raise ConfigError("give gallery ids, --key KEY or filter flags (e.g. --person-ids 3) to delete")
    if not by_id:
        return _erase(args, filters)
    with _open(args, read_only=args.dry_run) as gallery:
        ids = sorted({*args.ids, *gallery.lookup(args.key)})
        if args.dry_run:
            gallery.get(ids)  # an unknown id raises NotFound, as it makes the deletion refuse
        else:
            gallery.delete(ids)
        remaining = gallery.count()
    print(
        f"would delete {len(ids)} item(s); nothing was deleted"
        if args.dry_run
        else f"deleted {len(ids)} item(s); {remaining} left"
    )
    return 0


def _erase(args: argparse.Namespace, filters: Filters) -> int:
    matching = f"matching {json.dumps(filters.as_dict())}"
    with _open(args, read_only=args.dry_run) as gallery:
        erasure = gallery.erase(filters, dry_run=args.dry_run)
        count, remaining = erasure.matched, gallery.count()
    print(
        f"would erase {count} item(s) {matching}; nothing was deleted"
        if args.dry_run
        else f"erased {count} item(s) {matching}; {remaining} left"
    )
    return 0


def describe_retention(policy: RetentionPolicy | None) -> str:
    if policy is None:
        return "no retention policy"
    days = int(policy.days) if float(policy.days).is_integer() else policy.days
    since = "insertion" if policy.by == "inserted" else "capture (insertion for items without a timestamp)"
    return f"keep items {days} day{'' if days == 1 else 's'}, counted from {since}"


def run_retention(args: argparse.Namespace) -> int:
    if args.by is not None and args.days is None:
        raise ConfigError("--by goes with --days N")
    if args.off and args.dry_run:
        raise ConfigError("--off erases nothing: leave out --dry-run")
    given = None if args.days is None else RetentionPolicy(args.days, by=args.by or "inserted")
    if args.dry_run:
        print(_retention_dry_run(args, given))
    elif args.off or given is not None:
        print(_store_retention(args, given))
    else:
        with _open(args, read_only=True) as gallery:
            print(describe_retention(gallery.retention))
    return 0


def _store_retention(args: argparse.Namespace, policy: RetentionPolicy | None) -> str:
    """Keep ``policy`` with the gallery (``None``: remove it) and erase what it has expired now."""
    with _open(args, read_only=False, sweep_on_open=False) as gallery:
        gallery.set_retention(policy)
        if policy is None:
            return f"{describe_retention(None)} (removed)"
        erased = gallery.sweep().erased
        return f"{describe_retention(policy)} (stored): erased {erased} item(s); {gallery.count()} left"


def _retention_dry_run(args: argparse.Namespace, given: RetentionPolicy | None) -> str:
    """What ``given`` (not stored), else the kept policy, would erase now."""
    with _open(args, read_only=True, sweep_on_open=False) as gallery:
        policy = given if given is not None else gallery.retention
        count = 0 if policy is None else gallery.sweep(dry_run=True, policies=[policy]).matched
    stored = "" if given is None else " (not stored)"
    return f"{describe_retention(policy)}{stored}: would erase {count} item(s); nothing was changed"


def run_export(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as gallery:
        out = gallery.export(args.out)
        count = gallery.count()
    print(f"exported {count} item(s) to {out}")
    return 0
