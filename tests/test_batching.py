"""Dynamic batching: requests share forwards, keep their rows, and overload is refused cleanly."""

from __future__ import annotations

import asyncio
import threading
from typing import cast

import numpy as np
import pytest
import torch

from reid.batching import DynamicBatcher
from reid.engine import Extractor
from reid.errors import NotReady, QueueFull
from reid.telemetry import Metrics
from tests.helpers import calibrated_extractor, smooth_images


class FakeExtractor:
    """Row i of the output encodes the first pixel of image i, so misrouted rows are detectable."""

    dim = 4

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.gate = gate
        self.fail = fail
        self.batches: list[int] = []

    def embed_batch(self, batch: torch.Tensor, *, normalize_output: bool = True) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("device lost")
        self.batches.append(batch.shape[0])
        first = batch[:, 0, 0, 0].float().numpy()
        return np.stack([first + 1, np.ones_like(first), np.zeros_like(first), np.zeros_like(first)], axis=1)


def one_image(value: int) -> torch.Tensor:
    return torch.full((1, 3, 2, 2), value, dtype=torch.uint8)


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_keep_their_rows() -> None:
    fake = FakeExtractor()

    async def main() -> list[np.ndarray]:
        batcher = DynamicBatcher(cast(Extractor, fake), max_batch_size=8, max_delay_ms=50)
        batcher.start()
        results = await asyncio.gather(*(batcher.embed(one_image(v), normalize=False) for v in range(16)))
        await batcher.stop()
        return [r.vectors for r in results]

    vectors = run(main())
    assert [v[0, 0] for v in vectors] == [float(v + 1) for v in range(16)]
    assert max(fake.batches) > 1
    assert all(b <= 8 for b in fake.batches)
    assert sum(fake.batches) == 16


def test_results_match_direct_embedding() -> None:
    extractor = calibrated_extractor()
    images = smooth_images(6, 64, 32, seed=3)
    direct = extractor.embed_batch(images)
    metrics = Metrics()

    async def main() -> list[np.ndarray]:
        batcher = DynamicBatcher(extractor, max_batch_size=4, max_delay_ms=20, metrics=metrics)
        batcher.start()
        parts = [images[0:1], images[1:3], images[3:4], images[4:6]]
        results = await asyncio.gather(*(batcher.embed(p) for p in parts))
        await batcher.stop()
        return [r.vectors for r in results]

    np.testing.assert_allclose(np.concatenate(run(main())), direct, atol=1e-5)
    assert metrics.images_embedded._value.get() == 6
    assert metrics.batch_size._sum.get() == 6


def test_queue_full_is_refused_with_retry_after() -> None:
    gate = threading.Event()
    fake = FakeExtractor(gate)

    async def main() -> None:
        batcher = DynamicBatcher(cast(Extractor, fake), max_batch_size=1, max_delay_ms=0, max_queue=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.embed(one_image(1)))
        await asyncio.sleep(0.05)  # the worker has taken it and is blocked in the model
        queued = [asyncio.ensure_future(batcher.embed(one_image(v))) for v in (2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as info:
            await batcher.embed(one_image(4))
        assert info.value.retry_after_s > 0
        gate.set()
        await asyncio.gather(first, *queued)
        await batcher.stop()

    run(main())


def test_a_failing_batch_fails_its_requests_and_the_worker_survives() -> None:
    fake = FakeExtractor(fail=True)

    async def main() -> None:
        batcher = DynamicBatcher(cast(Extractor, fake), max_delay_ms=0)
        batcher.start()
        with pytest.raises(RuntimeError, match="device lost"):
            await batcher.embed(one_image(1))
        fake.fail = False
        result = await batcher.embed(one_image(5), normalize=False)
        assert result.vectors[0, 0] == 6
        await batcher.stop()

    run(main())


def test_not_running_and_shutdown_refuse_with_not_ready() -> None:
    gate = threading.Event()
    fake = FakeExtractor(gate)

    async def main() -> None:
        batcher = DynamicBatcher(cast(Extractor, fake), max_batch_size=1, max_delay_ms=0)
        with pytest.raises(NotReady):
            await batcher.embed(one_image(1))
        batcher.start()
        busy = asyncio.ensure_future(batcher.embed(one_image(1)))
        await asyncio.sleep(0.05)  # in the model, blocked on the gate
        waiting = asyncio.ensure_future(batcher.embed(one_image(2)))
        await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.05)
        for fut in (busy, waiting):
            with pytest.raises(NotReady):
                await fut
        assert not stopping.done()  # still waiting for the forward in flight
        gate.set()
        await stopping

    run(main())


def test_normalised_rows_are_unit_length() -> None:
    fake = FakeExtractor()

    async def main() -> np.ndarray:
        batcher = DynamicBatcher(cast(Extractor, fake), max_delay_ms=0)
        batcher.start()
        result = await batcher.embed(one_image(3))
        await batcher.stop()
        return result.vectors

    v = run(main())
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
