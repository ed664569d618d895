"""`reid embed IMAGES... --out feats.npy`: embed files, folders or manifests into an .npy matrix."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from reid.cli.common import add_engine_arguments, extractor_from_args
from reid.datasets import ImageRecord, discover_source, is_image_file
from reid.errors import ConfigError, ReidError

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("embed", help="embed images into an .npy file")
    p.add_argument("inputs", nargs="+", help="image files, folders (recursive) or CSV/JSONL manifests")
    p.add_argument(
        "--out",
        required=True,
        help="output .npy (N x dim float32); a .json with the row order is written beside it",
    )
    p.add_argument(
        "--no-normalize", dest="normalize", action="store_false", help="keep raw (unnormalised) features"
    )
    add_engine_arguments(p)
    p.set_defaults(func=run)


def collect(inputs: list[str]) -> list[ImageRecord]:
    records: list[ImageRecord] = []
    for item in inputs:
        path = Path(item)
        if path.is_file() and is_image_file(path):
            records.append(ImageRecord(path=path, key=str(path)))
        else:
            records.extend(discover_source(path))
    return records


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npy":
        raise ConfigError(f"--out must end in .npy, got {out}")
    records = collect(args.inputs)
    extractor = extractor_from_args(args)
    rows: list[np.ndarray] = []
    kept: list[ImageRecord] = []
    failures: list[tuple[ImageRecord, ReidError]] = []
    try:
        with tqdm(total=len(records), unit="img", desc="embed", disable=None) as bar:
            size = extractor.options.max_batch_size
            for start in range(0, len(records), size):
                chunk = records[start : start + size]
                prepared = extractor.prepare_many([str(r.path) for r in chunk])
                good = [(r, t) for r, t in zip(chunk, prepared, strict=True) if not isinstance(t, ReidError)]
                failures += [(r, t) for r, t in zip(chunk, prepared, strict=True) if isinstance(t, ReidError)]
                if good:
                    batch = torch.stack([t for _, t in good])
                    rows.append(extractor.embed_batch(batch, normalize_output=args.normalize))
                    kept += [r for r, _ in good]
                bar.update(len(chunk))
    finally:
        extractor.close()
    vectors = np.concatenate(rows) if rows else np.empty((0, extractor.dim), np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, vectors)
    index = {
        "model": extractor.fingerprint,
        "dim": extractor.dim,
        "normalized": args.normalize,
        "keys": [r.key for r in kept],
    }
    out.with_suffix(".json").write_text(json.dumps(index, indent=1))
    for record, err in failures:
        print(f"skipped {record.path}: {err}", file=sys.stderr)
    shape = f"{vectors.shape[0]}x{extractor.dim}"
    print(f"embedded {len(kept)} images -> {out} ({shape}, model {extractor.fingerprint})")
    return 1 if failures else 0
