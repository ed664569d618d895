"""`reid weights list` (the zoo and its published metrics) and `reid weights pull NAME|URL` (download into
the cache without serving, e.g. while building an image)."""

from __future__ import annotations

import argparse
from typing import Any

from reid.checkpoints import read_manifest
from reid.zoo.cache import entry_dir
from reid.zoo.catalog import load_zoo
from reid.zoo.options import ZooOptions
from reid.zoo.resolve import resolve_weights


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "weights",
        help="list the model zoo, or download weights into the cache",
        description="Weights by name or URL. The cache is REID_HOME (default $XDG_CACHE_HOME/reid or "
        "~/.cache/reid); REID_OFFLINE=1 uses it only; REID_ZOO_FILE adds zoo entries of your own.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="zoo names, input sizes and published metrics")
    listing.set_defaults(func=run_list)
    pull = actions.add_parser("pull", help="download a zoo name or an https URL into the cache")
    pull.add_argument("weights", metavar="NAME|URL", help="zoo name (see `reid weights list`) or https URL")
    pull.set_defaults(func=run_pull)


def run_list(args: argparse.Namespace) -> int:
    options = ZooOptions.from_env()
    entries = sorted(load_zoo(options.zoo_file).values(), key=lambda e: e.name)
    width = max(len(e.name) for e in entries)
    print(f"{'NAME':<{width}}  {'INPUT':<7}  CACHED  PUBLISHED METRICS (%)")
    for entry in entries:
        cached = (entry_dir(options.cache_dir, entry.name) / entry.file_name).is_file()
        size = "x".join(map(str, entry.input_size))
        print(f"{entry.name:<{width}}  {size:<7}  {'yes' if cached else '-':<6}  {entry.metrics_text()}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    resolved = resolve_weights(args.weights)
    manifest = read_manifest(resolved.path) if resolved.path.is_file() else None
    if resolved.origin is None or manifest is None:
        print(f"{args.weights} is a local path ({resolved.path}): nothing to pull")
        return 0
    print(
        f"{resolved.origin.name or resolved.origin.url}: {resolved.path} "
        f"({manifest.model.backbone_name}, {manifest.embedding_dim}-d, "
        f"{manifest.preprocess.height}x{manifest.preprocess.width}, sha256 {manifest.sha256})"
    )
    return 0
