"""`reid eval DATASET`: CMC / mAP / mINP of the model on a Market-1501 layout, with optional pictures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reid.checkpoints import record_thresholds
from reid.cli.common import add_engine_arguments, extractor_from_args, weights_from_args
from reid.engine import find_checkpoint
from reid.errors import ConfigError
from reid.evaluation.runner import evaluate_market, extractor_embedder
from reid.evaluation.thresholds import DEFAULT_FMRS
from reid.gallery import RerankConfig
from reid.preprocess import Preprocessor
from reid.zoo import resolve_weights


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "eval",
        help="evaluate on a Market-1501 layout (query/, bounding_box_test/)",
        description="Embed the query and gallery images and score the ranking with the standard "
        "protocol (gallery images of the query's person seen by the query's camera, and junk, are "
        "ignored). Use --flip for flip test-time augmentation.",
    )
    p.add_argument("dataset", type=Path, help="dataset root (holding query/ and bounding_box_test/)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    p.add_argument("--k1", type=int, default=20, help="re-ranking k1 (default 20)")
    p.add_argument("--k2", type=int, default=6, help="re-ranking k2 (default 6)")
    p.add_argument("--lambda", dest="lambda_value", type=float, default=0.3, help="re-ranking λ (0.3)")
    p.add_argument("--visualize", type=int, default=0, metavar="N", help="draw the N worst queries as PNGs")
    p.add_argument("--top-k", type=int, default=10, help="results per picture (default 10)")
    p.add_argument("--out", type=Path, default=Path("reid-eval"), help="picture folder (default reid-eval/)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    p.add_argument(
        "--fmr",
        type=float,
        nargs="+",
        default=list(DEFAULT_FMRS),
        metavar="RATE",
        help="false-match rates to report match thresholds for (default 0.01 0.001)",
    )
    p.add_argument(
        "--save-thresholds",
        action="store_true",
        help="store the thresholds in the weights' manifest, for /search's match flags",
    )
    p.add_argument(
        "--track-level",
        action="store_true",
        help="also score tracks (Market's person/camera/sequence): crops aggregated per track, side by side",
    )
    p.add_argument("--workers", type=int, help="decode threads (default: min(8, CPU count))")
    add_engine_arguments(p)
    p.set_defaults(func=run)


def _checkpoint_of(args: argparse.Namespace) -> Path:
    """The checkpoint file the evaluated weights came from (thresholds belong to it)."""
    weights = weights_from_args(args)
    checkpoint = find_checkpoint(resolve_weights(weights).path) if weights is not None else None
    if checkpoint is None:
        raise ConfigError("--save-thresholds needs weights (random weights have no manifest to keep them)")
    return checkpoint


def run(args: argparse.Namespace) -> int:
    rerank = RerankConfig(k1=args.k1, k2=args.k2, lambda_value=args.lambda_value) if args.rerank else None
    extractor = extractor_from_args(args)
    decoder = Preprocessor(extractor.preprocess, workers=args.workers) if args.workers else None
    try:
        embed = extractor_embedder(extractor, chunk_size=extractor.options.max_batch_size, decoder=decoder)
        result = evaluate_market(
            args.dataset,
            embed,
            rerank=rerank,
            visualize=args.visualize,
            out_dir=args.out,
            top_k=args.top_k,
            track_level=args.track_level,
            fmrs=args.fmr,
        )
    finally:
        if decoder is not None:
            decoder.close()
        extractor.close()
    print(result.table())
    if args.save_thresholds:
        checkpoint = _checkpoint_of(args)
        record_thresholds(checkpoint, {**result.thresholds_record(), "fingerprint": extractor.fingerprint})
        print(f"thresholds saved in the manifest of {checkpoint}")
    if result.pictures is not None:
        print(f"pictures: {result.pictures}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {**result.to_json(), "model": extractor.info()}
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0
