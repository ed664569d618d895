"""`reid export WEIGHTS --format onnx|openvino|tensorrt`: an artifact for another runtime, verified
against eager fp32 and described by a manifest beside it (see :mod:`reid.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reid.engine import find_checkpoint
from reid.errors import ConfigError
from reid.export import FORMATS, ExportOptions, export_checkpoint
from reid.runtimes import BatchProfile
from reid.runtimes.artifact import THRESHOLDS

_DEFAULT = BatchProfile()


def register(sub: Any) -> None:
    thresholds = ", ".join(f"{k} {v:g}" for k, v in THRESHOLDS.items())
    p: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX, OpenVINO or TensorRT (verified against eager fp32)",
        description="Export WEIGHTS for another runtime with a dynamic batch axis, check the artifact "
        "against eager fp32 on sample images and write it with a manifest (<artifact>.json). The error "
        "is the largest distance between an image's artifact and eager embeddings relative to the median "
        f"distance between two different images; thresholds: {thresholds}. An artifact above its "
        "threshold is not written unless --force. Point --weights / REID_WEIGHTS at the artifact (or its "
        "folder) to serve it; its runtime follows from the suffix.",
    )
    p.add_argument("weights", type=Path, help="checkpoint file, or a folder holding one")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16", "int8"),
        help="precision (default: fp32 for onnx, bf16 for openvino where the CPU has it natively, "
        "fp16 for tensorrt); fp16 onnx: for ONNX Runtime's CUDA provider; int8: openvino with "
        "--calibration",
    )
    p.add_argument("--min-batch", type=int, default=_DEFAULT.min, help=f"default {_DEFAULT.min}")
    p.add_argument("--opt-batch", type=int, help=f"size tuned for (default {_DEFAULT.opt}, within min..max)")
    p.add_argument("--max-batch", type=int, default=_DEFAULT.max, help=f"default {_DEFAULT.max}")
    p.add_argument(
        "--out",
        type=Path,
        help="artifact path (ending in .onnx/.xml/.ep) or a folder for it (default: "
        "<stem>-<format>-<dtype>/ beside the checkpoint)",
    )
    p.add_argument(
        "--samples", type=Path, metavar="DIR", help="images to verify on (default: synthetic pictures)"
    )
    p.add_argument(
        "--calibration",
        type=Path,
        metavar="DIR",
        help="representative person crops for int8 (NNCF post-training quantisation; up to 300 used)",
    )
    p.add_argument("--threshold", type=float, help="largest accepted error (default: per precision)")
    p.add_argument("--force", action="store_true", help="write even if verification fails (recorded)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checkpoint = find_checkpoint(args.weights)
    if checkpoint is None:
        raise ConfigError(f"{args.weights} holds no checkpoint to export")
    opt = (
        args.opt_batch
        if args.opt_batch is not None
        else min(max(_DEFAULT.opt, args.min_batch), args.max_batch)
    )
    options = ExportOptions(
        format=args.format,
        dtype=args.dtype,
        batch=BatchProfile(args.min_batch, opt, args.max_batch),
        force=args.force,
        threshold=args.threshold,
        samples=args.samples,
        calibration=args.calibration,
    )
    result = export_checkpoint(checkpoint, options, args.out)
    print(result.describe())
    return 0 if result.manifest.verification.passed else 1
