"""`reid eval DATASET`: CMC / mAP / mINP of the model on a Market-1501 layout, with optional pictures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reid.cli.common import add_engine_arguments, extractor_from_args
from reid.evaluation.runner import evaluate_market, extractor_embedder
from reid.gallery import RerankConfig
from reid.preprocess import Preprocessor


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
    p.add_argument("--workers", type=int, help="decode threads (default: min(8, CPU count))")
    add_engine_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rerank = RerankConfig(k1=args.k1, k2=args.k2, lambda_value=args.lambda_value) if args.rerank else None
    extractor = extractor_from_args(args)
    decoder = Preprocessor(extractor.preprocess, workers=args.workers) if args.workers else None
    try:
        embed = extractor_embedder(extractor, chunk_size=args.batch_size, decoder=decoder)
        result = evaluate_market(
            args.dataset, embed, rerank=rerank, visualize=args.visualize, out_dir=args.out, top_k=args.top_k
        )
    finally:
        if decoder is not None:
            decoder.close()
        extractor.close()
    print(result.table())
    if result.pictures is not None:
        print(f"pictures: {result.pictures}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {**result.to_json(), "model": extractor.info()}
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0
