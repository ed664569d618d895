"""The load client of ``load_test.py``: keeps JPEG requests (one image each unless ``--images``) in flight
against ``/embed``.

It runs in its own process (so it never competes with the server for the GIL) and imports only what a
client needs. Protocol: after start-up it prints ``ready``; then each ``<warm-up s> <seconds>`` line on
stdin runs one slice of load and answers one JSON line (a :class:`Tally`).

    python benchmarks/load_client.py http://127.0.0.1:8000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from dataclasses import asdict, dataclass, field

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families


def person_jpeg(seed: int = 0) -> bytes:
    """A 128×256 crop-sized JPEG with some structure (smooth colour regions), about what cameras send."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 4, 3), dtype=np.uint8)
    picture = Image.fromarray(coarse).resize((128, 256), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def batch_totals(metrics_text: str) -> tuple[float, float]:
    """(images, forwards) so far, from the reid_batch_size histogram."""
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name in ("reid_batch_size_sum", "reid_batch_size_count")
    }
    return values["reid_batch_size_sum"], values["reid_batch_size_count"]


def decoded_totals(metrics_text: str) -> dict[str, float]:
    """Images decoded so far by each decoder (pillow, device, pillow_fallback), from reid_decoded_images."""
    return {
        sample.labels["decoder"]: sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "reid_decoded_images_total"
    }


SERVER_TIMES = ("x-decode-time", "x-queue-time", "x-inference-time")


@dataclass
class Tally:
    """What the client saw in its measurement windows."""

    completed: int = 0
    errors: int = 0
    seconds: float = 0.0
    images: float = 0.0  # from the server's batch-size histogram
    forwards: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_ms: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in SERVER_TIMES})

    def add(self, other: Tally) -> None:
        self.completed += other.completed
        self.errors += other.errors
        self.seconds += other.seconds
        self.images += other.images
        self.forwards += other.forwards
        self.latencies += other.latencies
        for name in SERVER_TIMES:
            self.server_ms[name] += other.server_ms[name]


async def load_slice(
    client: httpx.AsyncClient, upload: httpx.Request, concurrency: int, warmup: float, seconds: float
) -> Tally:
    """Keep ``concurrency`` requests in flight; count what completes inside [warm-up end, + seconds)."""
    tally = Tally(seconds=seconds)
    start = time.perf_counter() + warmup
    stop = start + seconds
    marks: list[tuple[float, float]] = []

    async def snapshot(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        marks.append(batch_totals((await client.get("/metrics")).text))

    async def worker() -> None:
        while (sent := time.perf_counter()) < stop:
            response = await client.post("/embed", content=upload.content, headers=upload.headers)
            if start <= (done := time.perf_counter()) < stop:
                tally.completed += 1
                tally.errors += response.status_code != 200
                tally.latencies.append(done - sent)
                for name in SERVER_TIMES:
                    tally.server_ms[name].append(float(response.headers.get(name, "nan")))

    await asyncio.gather(snapshot(start), snapshot(stop), *(worker() for _ in range(concurrency)))
    (images_0, forwards_0), (images_1, forwards_1) = marks
    tally.images, tally.forwards = images_1 - images_0, forwards_1 - forwards_0
    return tally


async def client_loop(url: str, concurrency: int, images: int = 1) -> None:
    # One connection more than the workers: the /metrics snapshots must not queue behind their requests.
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        # The multipart body is encoded once: the client's own CPU time is not what is being measured.
        files = [("images", (f"crop{i}.jpg", person_jpeg(i), "image/jpeg")) for i in range(images)]
        upload = client.build_request("POST", "/embed", files=files)
        upload.read()
        print("ready", flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            warmup, seconds = map(float, line.split())
            print(
                json.dumps(asdict(await load_slice(client, upload, concurrency, warmup, seconds))), flush=True
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--images", type=int, default=1, help="images per request")
    args = p.parse_args(argv)
    asyncio.run(client_loop(args.url, args.concurrency, args.images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
