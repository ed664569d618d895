"""Cross-request dynamic batching: many small requests share one model forward.

One :class:`DynamicBatcher` owns the extractor. Requests enqueue decoded uint8 tensors and await a
future; a single worker task gathers requests until the batch is full or the oldest has waited
``max_delay_ms``, runs the forward on a dedicated thread (never on the event loop) and resolves the
futures. While one batch runs, the next one fills up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from reid.embeddings import l2_normalize
from reid.engine import Extractor
from reid.errors import ConfigError, NotReady, QueueFull
from reid.telemetry import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    vectors: np.ndarray  # (n, dim) float32
    queue_time_s: float
    inference_time_s: float
    batch_size: int


@dataclass
class _Request:
    images: torch.Tensor
    normalize: bool
    future: asyncio.Future[BatchResult]
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(
        self,
        extractor: Extractor,
        *,
        max_batch_size: int = 64,
        max_delay_ms: float = 3.0,
        max_queue: int = 1024,
        metrics: Metrics | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_delay_ms < 0:
            raise ConfigError("batcher needs max_batch_size >= 1, max_queue >= 1, max_delay_ms >= 0")
        self.extractor = extractor
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_ms / 1000
        self.max_queue = max_queue
        self.metrics = metrics
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._queued_images = 0
        self._held: _Request | None = None
        self._inflight: list[_Request] = []
        self._task: asyncio.Task[None] | None = None
        # One thread: the model has exactly one owner, and the event loop never blocks on it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reid-infer")

    @property
    def queued_images(self) -> int:
        return self._queued_images

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._worker(), name="reid-batcher")

    async def stop(self) -> None:
        """Refuse everything queued or in flight with NotReady, then wait for the running forward to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        pending = [*self._inflight, *([self._held] if self._held else [])]
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for req in pending:
            if not req.future.done():
                req.future.set_exception(NotReady("the service is shutting down"))
        self._inflight, self._held, self._queued_images = [], None, 0
        self._set_depth()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    async def embed(self, images: torch.Tensor, *, normalize: bool = True) -> BatchResult:
        """Queue a uint8 (n, 3, H, W) tensor; resolves with this request's rows, in order."""
        if not self.running:
            raise NotReady("the batcher is not running")
        n = int(images.shape[0])
        if n == 0:
            return BatchResult(np.empty((0, self.extractor.dim), np.float32), 0.0, 0.0, 0)
        if self._queued_images + n > self.max_queue:
            if self.metrics:
                self.metrics.rejected.inc()
            raise QueueFull(
                f"inference queue is full ({self._queued_images} images waiting)", retry_after_s=1.0
            )
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._queued_images += n
        self._set_depth()
        await self._queue.put(_Request(images, normalize, future))
        return await future

    def _set_depth(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(self._queued_images)

    async def _next(self, timeout: float | None) -> _Request | None:
        if self._held is not None:
            req, self._held = self._held, None
            return req
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait() if not self._queue.empty() else None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _gather(self) -> list[_Request]:
        first = await self._next(None)
        assert first is not None
        batch, size = [first], int(first.images.shape[0])
        deadline = first.enqueued + self.max_delay_s
        while size < self.max_batch_size:
            req = await self._next(deadline - time.perf_counter())
            if req is None:
                break
            if size + req.images.shape[0] > self.max_batch_size:
                self._held = req  # starts the next batch; requests are never split or reordered
                break
            batch.append(req)
            size += int(req.images.shape[0])
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [r for r in batch if not r.future.cancelled()]
            n_images = sum(int(r.images.shape[0]) for r in batch)
            self._queued_images -= n_images
            self._set_depth()
            if not live:
                continue
            self._inflight = live
            started = time.perf_counter()
            images = torch.cat([r.images for r in live]) if len(live) > 1 else live[0].images
            try:
                feats = await loop.run_in_executor(self._executor, self._infer, images)
            except Exception as exc:  # deliver the failure to every waiter; the worker keeps serving
                logger.exception("batch of %d images failed", images.shape[0])
                for r in live:
                    if not r.future.done():
                        r.future.set_exception(exc)
                self._inflight = []
                continue
            self._inflight = []
            elapsed = time.perf_counter() - started
            self._record(live, images.shape[0], started, elapsed)
            offset = 0
            for r in live:
                n = int(r.images.shape[0])
                rows = feats[offset : offset + n]
                offset += n
                if r.normalize:
                    rows = l2_normalize(rows)
                if not r.future.done():
                    r.future.set_result(
                        BatchResult(rows, started - r.enqueued, elapsed, int(images.shape[0]))
                    )

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        return self.extractor.embed_batch(images, normalize_output=False)

    def _record(self, live: list[_Request], size: int, started: float, elapsed: float) -> None:
        if not self.metrics:
            return
        self.metrics.batch_size.observe(size)
        self.metrics.inference_time.observe(elapsed)
        self.metrics.images_embedded.inc(size)
        for r in live:
            self.metrics.queue_time.observe(started - r.enqueued)
