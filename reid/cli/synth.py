"""`reid synth OUT`: write a tiny synthetic dataset in Market-1501 layout (for demos and tests)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reid.datasets import make_synthetic_market


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "synth",
        help="write a tiny synthetic Market-1501 style dataset",
        description="Stick figures with a shirt/trousers colour per person and a background per camera: "
        "query/, bounding_box_test/ (with distractors 0000 and junk -1) and bounding_box_train/.",
    )
    p.add_argument("out", type=Path, help="dataset root to create (its split folders must be empty)")
    p.add_argument("--ids", type=int, default=8, help="test identities (default 8)")
    p.add_argument("--train-ids", type=int, default=4, help="training identities (default 4; 0: none)")
    p.add_argument("--cameras", type=int, default=3, help="cameras, 2 to 9 (default 3)")
    p.add_argument("--per-camera", type=int, default=2, help="gallery images per identity and camera (2)")
    p.add_argument(
        "--queries-per-camera", type=int, default=1, help="query images per identity and camera (1)"
    )
    p.add_argument("--distractors", type=int, default=4, help="distractor images, person 0000 (default 4)")
    p.add_argument("--junk", type=int, default=4, help="junk images, person -1 (default 4)")
    p.add_argument("--height", type=int, default=128, help="image height (default 128)")
    p.add_argument("--width", type=int, default=64, help="image width (default 64)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dataset = make_synthetic_market(
        args.out,
        num_ids=args.ids,
        num_train_ids=args.train_ids,
        num_cameras=args.cameras,
        images_per_id_per_camera=args.per_camera,
        num_distractors=args.distractors,
        num_junk=args.junk,
        queries_per_camera=args.queries_per_camera,
        height=args.height,
        width=args.width,
        image_format=args.format,
        seed=args.seed,
    )
    print(
        f"wrote {dataset.root}: {len(dataset.query)} query, {len(dataset.gallery)} gallery, "
        f"{len(dataset.train)} train images"
    )
    return 0
