"""The GPU measurements of ``benchmarks/gpu_check.sh`` that no other command makes, one sub-command each.

    python benchmarks/gpu_probes.py checkpoint OUT.safetensors   # random SE-IBN-R50 weights + manifest
    python benchmarks/gpu_probes.py decode [--images 512]        # JPEG decode+resize img/s, CPU vs GPU
    python benchmarks/gpu_probes.py faiss [--n 1000000]          # FAISS GPU exact search, 1M x 2048
    python benchmarks/gpu_probes.py train [--ids 64]             # reid train img/s: SE-IBN-R50 256x128 bf16

Each prints its figures and exits non-zero when it cannot measure (no CUDA, no faiss GPU build).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from reid.bench import calibrate_batchnorm
from reid.checkpoints import write_checkpoint_manifest, write_safetensors
from reid.datasets import make_synthetic_market
from reid.device_decode import DeviceJpegDecoder
from reid.export.verify import synthetic_jpegs
from reid.models import DEFAULT_BACKBONE, create_reid_model
from reid.preprocess import PreprocessConfig, Preprocessor, normalize
from reid.training import load_config, train


def _best_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: threads, CUDA context, kernels
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        call()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def checkpoint(args: argparse.Namespace) -> int:
    """Random product-model weights with calibrated BatchNorm statistics, as a checkpoint with manifest."""
    preprocess = PreprocessConfig()
    with Preprocessor(preprocess) as pre:
        images = pre.prepare_batch(synthetic_jpegs(32, (preprocess.height, preprocess.width)))
    torch.manual_seed(0)
    model = calibrate_batchnorm(create_reid_model(DEFAULT_BACKBONE), [normalize(images, preprocess)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(model.state_dict(), args.out)
    manifest = write_checkpoint_manifest(args.out, source="reid")
    print(f"wrote {args.out} ({manifest.fingerprint}, random weights, BatchNorm calibrated)")
    return 0


def decode(args: argparse.Namespace) -> int:
    """Decode + resize to 256×128 as the service does it: Pillow on CPU threads vs ``REID_GPU_DECODE``
    (the threads read and check the files, nvJPEG decodes the batch, the GPU resizes). Both end with the
    uint8 batch on the GPU, where the model wants it."""
    preprocess = PreprocessConfig()
    jpegs = synthetic_jpegs(args.images, (512, 256), seed=1)
    threads = os.cpu_count() or 1
    cuda = torch.device("cuda")
    on_gpu = DeviceJpegDecoder(preprocess, cuda)
    with (
        Preprocessor(preprocess, workers=threads) as cpu_pre,
        Preprocessor(preprocess, workers=threads, device_decoder=on_gpu) as gpu_pre,
    ):
        cpu = _best_seconds(lambda: cpu_pre.prepare_batch(jpegs).to(cuda), args.repeats)
        gpu = _best_seconds(lambda: gpu_pre.prepare_batch(jpegs), args.repeats)
        gap = (gpu_pre.prepare_batch(jpegs).int() - cpu_pre.prepare_batch(jpegs).to(cuda).int()).abs()
    print(f"decode+resize 512x256 JPEG -> 256x128 on the GPU, {args.images} images:")
    print(f"  CPU (Pillow, {threads} threads)  : {args.images / cpu:10.1f} img/s")
    print(f"  GPU (REID_GPU_DECODE, nvJPEG) : {args.images / gpu:10.1f} img/s  ({cpu / gpu:.2f}x CPU)")
    print(f"  pixels vs Pillow: max {int(gap.max())} grey levels, mean {float(gap.float().mean()):.3f}")
    print(f"  recommendation: REID_GPU_DECODE={'true' if gpu < cpu else 'false'} on this host")
    return 0


def faiss_search(args: argparse.Namespace) -> int:
    """Exact inner-product search over ``n`` unit vectors of ``dim`` on the GPU (GpuIndexFlatIP)."""
    import faiss

    if faiss.get_num_gpus() < 1:
        print("error: this faiss has no GPU support (install the gpu extra, faiss-gpu)", file=sys.stderr)
        return 1
    import faiss.contrib.torch_utils  # lets the index take CUDA tensors directly

    resources = faiss.StandardGpuResources()
    index = faiss.GpuIndexFlatIP(resources, args.dim)
    generator = torch.Generator(device="cuda").manual_seed(0)
    for start in range(0, args.n, 100_000):
        chunk = torch.randn(min(100_000, args.n - start), args.dim, device="cuda", generator=generator)
        index.add(F.normalize(chunk, dim=1))
    queries = F.normalize(torch.randn(args.queries, args.dim, device="cuda", generator=generator), dim=1)
    seconds = _best_seconds(lambda: index.search(queries, 10), args.repeats)
    print(
        f"FAISS GPU exact search, {index.ntotal:,} x {args.dim}: {args.queries} queries (top 10) in "
        f"{seconds * 1000:.1f} ms = {args.queries / seconds:,.0f} queries/s"
    )
    return 0


def train_throughput(args: argparse.Namespace) -> int:
    """Training img/s of the BoT recipe (SE-IBN-R50, 256x128, bf16 autocast, channels_last): two epochs on a
    synthetic Market set, the second one reported (the first pays for cuDNN autotuning)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        market = make_synthetic_market(
            root / "market",
            num_ids=2,
            num_train_ids=args.ids,
            images_per_id_per_camera=4,
            height=256,
            width=128,
        )
        config = load_config(
            "bot", overrides={"epochs": 2, "warmup_epochs": 1, "eval_every": 0, "workers": 8}
        )
        result = train(config, list(market.train), root / "run")
    rate = result.history[-1]["images_per_second"]
    shape = f"{config.backbone} {config.height}x{config.width} bf16, batch {config.batch_size}"
    print(f"reid train, {shape}: {rate:,.0f} img/s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("checkpoint")
    p.add_argument("out", type=Path)
    p.set_defaults(func=checkpoint, needs_cuda=False)
    p = sub.add_parser("decode")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    p.set_defaults(func=decode, needs_cuda=True)
    p = sub.add_parser("faiss")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.set_defaults(func=faiss_search, needs_cuda=True)
    p = sub.add_parser("train")
    p.add_argument("--ids", type=int, default=64, help="training identities (x 3 cameras x 4 crops)")
    p.set_defaults(func=train_throughput, needs_cuda=True)
    args = parser.parse_args(argv)
    if args.needs_cuda and not torch.cuda.is_available():
        print("error: CUDA is not available", file=sys.stderr)
        return 1
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
