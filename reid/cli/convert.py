"""`reid convert IN OUT.safetensors`: remap a foreign checkpoint once and save it clean, with its manifest."""

from __future__ import annotations

import argparse
from typing import Any

from reid.checkpoints import SOURCES, export_safetensors, load_checkpoint
from reid.errors import ConfigError
from reid.zoo.resolve import resolve_weights


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "convert",
        help="convert a fast-reid / strong-baseline / torchreid / IBN-Net / torchvision file to .safetensors",
    )
    p.add_argument("input", help="checkpoint file (.safetensors, .pth, .pt, .tar), zoo name or https URL")
    p.add_argument(
        "output", help="destination .safetensors; its manifest is written beside it as <name>.json"
    )
    p.add_argument(
        "--source", choices=["auto", *SOURCES], default="auto", help="key layout (default: detect)"
    )
    p.add_argument("--last-stride", type=int, choices=(1, 2), help="layer4 stride (default: the source's)")
    p.add_argument("--height", type=int, help="input height (default: the source's, usually 256)")
    p.add_argument("--width", type=int, help="input width (default: the source's, usually 128)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.height is None) != (args.width is None):
        raise ConfigError("give --height and --width together")
    size = (args.height, args.width) if args.height is not None else None
    loaded = load_checkpoint(
        resolve_weights(args.input).path, source=args.source, last_stride=args.last_stride, input_size=size
    )
    manifest = export_safetensors(loaded, args.output)
    print(
        f"{args.input} ({loaded.source}) -> {args.output}: {manifest.model.backbone_name}, "
        f"{manifest.embedding_dim}-d, {manifest.preprocess.height}x{manifest.preprocess.width}, "
        f"fingerprint {manifest.fingerprint}; {loaded.summary()}"
    )
    return 0
