"""`reid models`: list the presets, or summarise one (parameters, C1..C5 shapes)."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from reid.models import create_model, list_models


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("models", help="list model presets or summarise one")
    p.add_argument("name", nargs="?", help="preset to summarise (omit to list all)")
    p.add_argument(
        "--last-stride", type=int, default=1, help="stride of layer4 (default 1, the re-ID setting)"
    )
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        print("\n".join(list_models()))
        return 0
    model = create_model(args.name, last_stride=args.last_stride, features_only=True).eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        maps = model(torch.zeros(1, 3, args.height, args.width))
    print(f"{args.name}: {params:,} parameters (no classifier), last_stride={args.last_stride}")
    print(f"{'out':<4} {'module':<8} {'channels':>8} {'reduction':>9}  shape for {args.height}x{args.width}")
    for info, fmap in zip(model.feature_info, maps, strict=True):
        print(
            f"C{info.index:<3} {info.module:<8} {info.channels:>8} {info.reduction:>9}  {tuple(fmap.shape)}"
        )
    return 0
