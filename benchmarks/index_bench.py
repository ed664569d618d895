"""Indexing throughput against model-only throughput, measured in one run on the same machine.

Model-only: ``Extractor.embed_batch`` on pixels decoded beforehand. Indexing: ``reid.jobs.index_source``
on a folder of JPEG crops (decode, resize, model, gallery writes), timed end to end. Same model,
dtype, batch and chunk size; the target is a ratio of at least 0.90 (decoding must not be the
bottleneck). Random weights: speed does not depend on them.

On a shared machine the model's own speed drifts between phases, which blurs that ratio; the share of
the indexing time spent inside the model ("model busy") does not depend on the drift, and is what
the ratio would be if the model ran at the same speed in both phases.

    python benchmarks/index_bench.py                          # CPU-sized default (a few minutes)
    python benchmarks/index_bench.py --images 4096 --batch-size 128 --chunk-size 512 --workers 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reid.engine import EngineOptions, Extractor
from reid.jobs import index_source
from reid.models import DEFAULT_BACKBONE, ReIDModel, reid_config
from reid.preprocess import PreprocessConfig

TARGET = 0.90


def write_crops(folder: Path, count: int, height: int, width: int, seed: int = 0) -> list[Path]:
    """JPEG crops with smooth structure plus sensor-like noise, so they decode like real photos."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        low = Image.fromarray(rng.integers(0, 256, (8, 4, 3), dtype=np.uint8)).resize((width, height))
        pixels = np.asarray(low, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


class TimedExtractor(Extractor):
    """An extractor that adds up the time spent in :meth:`embed_batch`."""

    model_seconds = 0.0

    def embed_batch(self, batch: torch.Tensor, *, normalize_output: bool = True) -> np.ndarray:
        started = time.perf_counter()
        try:
            return super().embed_batch(batch, normalize_output=normalize_output)
        finally:
            self.model_seconds += time.perf_counter() - started


def model_only(extractor: Extractor, pixels: torch.Tensor, chunk_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(pixels), chunk_size):
        extractor.embed_batch(pixels[start : start + chunk_size])
    return len(pixels) / (time.perf_counter() - started)


def indexing(
    extractor: TimedExtractor, folder: Path, gallery: Path, chunk_size: int, workers: int
) -> tuple[float, float]:
    """Images per second, and the fraction of the time the model was busy."""
    extractor.model_seconds = 0.0
    started = time.perf_counter()
    summary = index_source(folder, gallery, extractor, chunk_size=chunk_size, workers=workers, progress=False)
    seconds = time.perf_counter() - started
    if summary.indexed != summary.total:
        raise RuntimeError(f"indexed {summary.indexed} of {summary.total} images")
    return summary.indexed / seconds, extractor.model_seconds / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=DEFAULT_BACKBONE, help=f"backbone preset (default {DEFAULT_BACKBONE})"
    )
    parser.add_argument("--images", type=int, default=64, help="images per round (default 64)")
    parser.add_argument("--crop", default="128x64", help="stored crop size HxW (default 128x64, Market-1501)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward")
    parser.add_argument("--chunk-size", type=int, help="images per indexing chunk (default 2 x batch size)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decode threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.crop.lower().split("x"))
    chunk_size = args.chunk_size or 2 * args.batch_size

    options = EngineOptions(device=args.device, dtype=args.dtype, max_batch_size=args.batch_size)
    model = ReIDModel(reid_config(args.model))
    extractor = TimedExtractor(model, PreprocessConfig(), fingerprint=f"{args.model}-random", options=options)
    with tempfile.TemporaryDirectory(prefix="reid-index-bench-") as tmp:
        folder = Path(tmp, "images")
        folder.mkdir()
        paths = write_crops(folder, args.images, height, width)
        pixels = extractor.prepare(paths)
        extractor.warmup([args.batch_size])
        model_rates, index_rates, busy = [], [], []
        for round_number in range(args.repeats):
            model_rates.append(model_only(extractor, pixels, chunk_size))
            gallery = Path(tmp, f"gallery-{round_number}")
            rate, busy_fraction = indexing(extractor, folder, gallery, chunk_size, args.workers)
            index_rates.append(rate)
            busy.append(busy_fraction)
    extractor.close()

    # Best of the rounds, as timeit does: other processes only ever slow a round down.
    model_rate, index_rate = max(model_rates), max(index_rates)
    ratio = index_rate / model_rate
    info = extractor.info()
    print(
        f"model {args.model} on {info['device']} ({info['dtype']}), batch {args.batch_size}, "
        f"chunk {chunk_size}, {args.workers} decode threads, {args.images} JPEG crops {height}x{width} "
        f"-> {PreprocessConfig().height}x{PreprocessConfig().width}; load average {os.getloadavg()[0]:.2f}"
    )
    rounds = ", ".join(
        f"{m:.1f}/{i:.1f}/{b:.1%}" for m, i, b in zip(model_rates, index_rates, busy, strict=True)
    )
    print(f"rounds (model only img/s, indexing img/s, model busy while indexing): {rounds}")
    print(f"model only : {model_rate:9.1f} img/s (best of {args.repeats})")
    print(f"indexing   : {index_rate:9.1f} img/s (best of {args.repeats})")
    print(f"ratio      : {ratio:9.3f}  (target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'NOT met'})")
    print(f"model busy : {statistics.median(busy):9.3f}  (median share of indexing time spent in the model)")


if __name__ == "__main__":
    main()
