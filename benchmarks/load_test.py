"""Load test: HTTP end-to-end throughput of ``POST /embed`` against model-only throughput, in one run.

1. Model only: ``Extractor.embed_batch`` on full batches of decoded uint8 crops.
2. HTTP: the service runs in this process (uvicorn on 127.0.0.1, a free port) over the same extractor;
   a client process (``load_client.py``: httpx, async) keeps ``--concurrency`` single-image JPEG
   requests in flight and reads the batch-size histogram from ``/metrics`` at the ends of its window.

The two parts alternate in short slices (``--slice``) until each has run ``--duration`` seconds, so a
busy neighbour or a clock change affects both alike.

Prints both throughputs, their ratio, p50/p99 latency and the mean model batch size. Defaults: the
product model (se_resnet50_ibn_a, 256×128) on a GPU; resnet18 at 128×64 on CPU to keep the run short.
Weights are random unless ``--weights`` is given (a checkpoint, or an artifact of ``reid export`` to load
test another runtime): throughput does not depend on them.

    python benchmarks/load_test.py [--duration 20] [--concurrency 32] [--preset resnet50 --height 256]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import torch
import uvicorn
from load_client import SERVER_TIMES, Tally, decoded_totals, person_jpeg
from tqdm import tqdm

from app.main import create_app
from app.settings import Settings
from reid.engine import RUNTIME_CHOICES, EngineOptions, Extractor, load_extractor
from reid.models import reid_config
from reid.preprocess import PreprocessConfig, prepare_image

logger = logging.getLogger("load_test")
CLIENT = Path(__file__).with_name("load_client.py")
GPU_DEFAULTS = ("se_resnet50_ibn_a", 256, 128)
CPU_DEFAULTS = ("resnet18", 128, 64)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="backbone preset (default: se_resnet50_ibn_a on GPU, resnet18 on CPU)")
    p.add_argument("--height", type=int, help="model input height (default 256 on GPU, 128 on CPU)")
    p.add_argument("--width", type=int, help="model input width (default 128 on GPU, 64 on CPU)")
    p.add_argument(
        "--weights",
        type=Path,
        help="a checkpoint or an exported artifact (.onnx, .xml, .ep) instead of random weights",
    )
    p.add_argument("--runtime", default="auto", choices=RUNTIME_CHOICES, help="auto: from --weights")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument(
        "--cuda-graphs", action=argparse.BooleanOptionalAction, default=False, help="REID_CUDA_GRAPHS"
    )
    p.add_argument(
        "--gpu-decode", action=argparse.BooleanOptionalAction, default=False, help="REID_GPU_DECODE"
    )
    p.add_argument("--max-batch-delay-ms", type=float, default=3.0)
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads for both parts (CPU default: all cores but one, left to HTTP and decoding)",
    )
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured, for each of the two parts")
    p.add_argument(
        "--slice", type=float, default=4.0, help="the parts alternate in slices of about this long"
    )
    p.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of load before each measured HTTP slice"
    )
    return p.parse_args(argv)


def build_extractor(args: argparse.Namespace) -> Extractor:
    options = EngineOptions(
        runtime=args.runtime,
        device=args.device,
        dtype=args.dtype,
        max_batch_size=args.max_batch_size,
        cuda_graphs=args.cuda_graphs,
        gpu_decode=args.gpu_decode,
    )
    if args.weights is not None:
        return load_extractor(args.weights, options=options)
    on_gpu = options.resolve_device().type == "cuda"
    preset, height, width = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    config = reid_config(args.preset or preset)
    return Extractor.random_init(
        config, PreprocessConfig(height=args.height or height, width=args.width or width), options=options
    )


def full_batch(extractor: Extractor, jpeg: bytes) -> torch.Tensor:
    crop = prepare_image(jpeg, extractor.preprocess)
    return crop.unsqueeze(0).repeat(extractor.options.max_batch_size, 1, 1, 1)


def model_only(extractor: Extractor, batch: torch.Tensor, seconds: float) -> tuple[int, float]:
    """(images, seconds) of back-to-back full-batch forwards on decoded crops, for at least ``seconds``."""
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or done == 0:
        extractor.embed_batch(batch)  # returns host arrays, so each forward has finished
        done += batch.shape[0]
    return done, elapsed


@contextlib.contextmanager
def serve(extractor: Extractor, args: argparse.Namespace, gallery_dir: Path) -> Iterator[str]:
    """The service on a free loopback port, in a background thread; yields its URL once ready."""
    settings = Settings(
        weights=None,
        gallery_dir=gallery_dir,
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        max_queue=max(1024, 4 * args.concurrency),
    )
    # Connections idle through a model-only slice: keep them open, or reuse races the server's close.
    config = uvicorn.Config(
        create_app(settings, extractor=extractor), log_level="warning", timeout_keep_alive=300
    )
    server = uvicorn.Server(config)
    sock = socket.socket(
        socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # so asyncio sets TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 300
        while not _ready(url):
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the service did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    extractor = build_extractor(args)
    if args.threads or extractor.device.type == "cpu":
        torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) - 1))
    info = extractor.info()
    rounds = max(1, math.ceil(args.duration / args.slice))
    seconds = args.duration / rounds
    print(
        f"model {info['backbone']} {info['input_size'][0]}×{info['input_size'][1]} on {info['device']} "
        f"({info['dtype']}{', CUDA graphs' if args.cuda_graphs else ''}"
        f"{', GPU decoding' if args.gpu_decode else ''}), max batch {args.max_batch_size}, "
        f"delay {args.max_batch_delay_ms:g} ms, "
        f"{args.concurrency} clients, torch threads {torch.get_num_threads()}; "
        f"{rounds} rounds of {seconds:.1f} s model-only then {seconds:.1f} s HTTP"
    )
    batch = full_batch(extractor, person_jpeg())
    extractor.warmup((batch.shape[0],))
    model_images, model_seconds, http = 0, 0.0, Tally()
    with tempfile.TemporaryDirectory() as tmp, serve(extractor, args, Path(tmp) / "gallery") as url:
        command = [sys.executable, str(CLIENT), url, "--concurrency", str(args.concurrency)]
        client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert client.stdin is not None
        assert client.stdout is not None
        try:
            if client.stdout.readline().strip() != "ready":  # its start-up must not overlap a measurement
                raise RuntimeError("the load client did not start")
            # Alternating short slices: a neighbour's load or clock changes hit both measurements alike.
            for _ in tqdm(range(rounds), desc="rounds", leave=False):
                images, elapsed = model_only(extractor, batch, seconds)
                model_images, model_seconds = model_images + images, model_seconds + elapsed
                client.stdin.write(f"{args.warmup} {seconds}\n")
                client.stdin.flush()
                answer = client.stdout.readline()
                if not answer:
                    raise RuntimeError("the load client stopped (its error is above)")
                http.add(Tally(**json.loads(answer)))
            decoded = decoded_totals(httpx.get(f"{url}/metrics", timeout=30).text)
        finally:
            client.stdin.close()
            client.wait(timeout=120)
    extractor.close()
    report(model_images / model_seconds, http, decoded)
    return 0 if http.completed and not http.errors else 1


def report(model_ips: float, http: Tally, decoded: dict[str, float]) -> None:
    http_ips = (http.completed - http.errors) / http.seconds
    print(f"model only : {model_ips:8.1f} img/s  (full batches of decoded crops)")
    requests = f"{http.completed} single-image JPEG requests, {http.errors} errors"
    print(f"HTTP /embed: {http_ips:8.1f} img/s  ({requests})")
    print(f"ratio      : {http_ips / model_ips:8.1%}  (target ≥ 90%)")
    p50, p99 = np.percentile(http.latencies, [50, 99]) * 1000
    print(f"latency    : p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"mean batch : {http.images / max(http.forwards, 1):.2f} images per forward")
    decode, queue, infer = (float(np.nanmean(http.server_ms[name])) for name in SERVER_TIMES)
    print(
        f"server time: decode {decode:.1f} ms, queue {queue:.1f} ms, inference {infer:.1f} ms (request means)"
    )
    # With --gpu-decode, proof that the JPEGs reached the GPU (whole run, warm-ups included).
    print("decoded by : " + ", ".join(f"{name} {int(n)}" for name, n in sorted(decoded.items())))


if __name__ == "__main__":
    sys.exit(main())
