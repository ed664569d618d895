"""`reid train DATASET --out DIR`: fine-tune a re-ID model on labelled crops (the BoT recipe).

Settings come from a preset (``--preset``), then a config file (``--config``), then flags. Several GPUs:
``torchrun --nproc_per_node N -m reid train ...``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reid.cli.options import add_dataclass_flags, given_flags
from reid.datasets import MarketDataset, load_market, read_image_list
from reid.errors import ConfigError
from reid.training import PRESETS, TrainConfig, load_config, train

_HELP = {
    "backbone": "backbone preset (reid models lists them)",
    "batch_size": "images per step, P identities × K instances, over all processes",
    "instances": "K: crops of one identity in a batch",
    "weights": "initial weights: any checkpoint reid loads (its backbone is used)",
    "eval_every": "evaluate on the query/gallery split every N epochs (0: at the end only)",
    "triplet_margin": "batch-hard triplet margin; 0 for the soft margin",
    "dtype": "mixed precision; auto: bf16/fp16 on GPU, fp32 on CPU",
}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="fine-tune a re-ID model on labelled crops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", help="a Market-1501-style folder (bounding_box_train/) or a CSV/JSONL manifest")
    p.add_argument("--out", required=True, help="output folder: checkpoint, manifest, config, history")
    p.add_argument("--preset", choices=sorted(PRESETS), help="base settings (default bot)")
    p.add_argument("--config", help="a JSON or TOML file of settings (its 'preset' key may name the base)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument(
        "--eval", dest="eval_dir", help="a Market-style folder to evaluate on (default: DATASET's)"
    )
    p.add_argument("--stop-after", type=int, help="end after this many epochs in all (resumable)")
    settings = p.add_argument_group("training settings")
    p.set_defaults(func=run, flag_names=add_dataclass_flags(settings, TrainConfig, helps=_HELP))


def _data(dataset: str, eval_dir: str | None) -> tuple[list[Any], MarketDataset | None]:
    path = Path(dataset)
    if path.is_file():
        records = read_image_list(path)
        return records, load_market(eval_dir) if eval_dir else None
    market = load_market(path)
    if not market.train:
        raise ConfigError(f"{path}: no bounding_box_train/ images to train on")
    return list(market.train), load_market(eval_dir) if eval_dir else market


def run(args: argparse.Namespace) -> int:
    config: TrainConfig = load_config(args.preset, args.config, given_flags(args, args.flag_names))
    records, evaluation = _data(args.dataset, args.eval_dir)
    result = train(
        config, records, args.out, evaluation=evaluation, resume=args.resume, stop_after=args.stop_after
    )
    summary = {"checkpoint": str(result.checkpoint), "fingerprint": result.manifest.fingerprint}
    if result.manifest.training and result.manifest.training.get("evaluation"):
        summary["evaluation"] = result.manifest.training["evaluation"]
    print(json.dumps(summary, indent=2))
    return 0
