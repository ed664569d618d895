"""`reid bench`: model-only throughput of each inference path against fp32 eager, plus decode speed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reid.bench import CPU_VARIANTS, CUDA_VARIANTS, BenchConfig, run_benchmark
from reid.models import DEFAULT_BACKBONE
from reid.runtimes import RUNTIMES


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=DEFAULT_BACKBONE, help=f"backbone preset (default {DEFAULT_BACKBONE})")
    p.add_argument(
        "--weights",
        help="checkpoint, zoo name or https URL to load (its own architecture: --preset is ignored), or an "
        "exported artifact (benchmarked beside its source checkpoint, found next to it or one folder up)",
    )
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch-sizes", type=_ints, help="comma-separated (default 1,8,32; plus 256 on CUDA)")
    cpu = ",".join(v.name for v in CPU_VARIANTS)
    cuda = ",".join(v.name for v in CUDA_VARIANTS)
    p.add_argument(
        "--variants",
        type=_names,
        help=f"comma-separated subset; fp32 always runs. CPU: {cpu}; CUDA: {cuda}. Default: all "
        "(bf16+compile on CPU only where bf16 is native)",
    )
    p.add_argument(
        "--runtime",
        dest="runtimes",
        type=_names,
        default=("torch",),
        help=f"comma-separated runtimes whose variants run (default torch; among {','.join(RUNTIMES)}); "
        "artifact runtimes export the model to a temporary folder first",
    )
    p.add_argument("--min-time", type=float, default=2.0, help="timed seconds per variant and batch size")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--decode-threads", type=_ints, help="comma-separated (default 1 and one per core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="benchmark inference paths (fp32, channels_last, bf16, compile; ONNX Runtime, OpenVINO, "
        "TensorRT) and decoding",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        preset=args.preset,
        weights=args.weights,
        height=args.height,
        width=args.width,
        batch_sizes=args.batch_sizes,
        variants=args.variants,
        runtimes=args.runtimes,
        min_time=args.min_time,
        rounds=args.rounds,
        device=args.device,
        decode_threads=args.decode_threads,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    report = run_benchmark(config_from_args(args))
    print(report.format())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``benchmarks/engine_bench.py``), same options as ``reid bench``."""
    parser = argparse.ArgumentParser(prog="engine_bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
