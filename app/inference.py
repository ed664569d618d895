"""Images of one request → embeddings: decode on a thread pool, then share model batches across requests."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch

from reid.batching import DynamicBatcher
from reid.device_decode import DeviceJpeg
from reid.engine import Extractor
from reid.errors import InvalidImage, TooManyImages
from reid.preprocess import PreprocessConfig, prepare_image, stack_prepared
from reid.telemetry import Metrics

# Bytes are an uploaded file; a str is always base64 text (never a path: clients must not name server files).
ImageInput = bytes | str

_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,")
_WHITESPACE = str.maketrans("", "", " \t\r\n")


def decode_base64(text: str, index: int) -> bytes:
    """Standard base64, optionally as a ``data:image/...;base64,`` URL or wrapped over lines."""
    payload = _DATA_URL.sub("", text, count=1).translate(_WHITESPACE)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"invalid base64: {exc}", index=index) from None


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray  # (n, dim) float32, in input order
    decode_time_s: float
    queue_time_s: float
    inference_time_s: float
    batch_size: int

    def timing_headers(self) -> dict[str, str]:
        """TEI-style timing headers, in milliseconds."""
        return {
            "x-decode-time": f"{self.decode_time_s * 1000:.3f}",
            "x-queue-time": f"{self.queue_time_s * 1000:.3f}",
            "x-inference-time": f"{self.inference_time_s * 1000:.3f}",
            "x-batch-size": str(self.batch_size),
        }


class EmbeddingService:
    """Owns the decode pool; the :class:`DynamicBatcher` owns the model.

    Decoding uses the extractor's preprocessing with the service's own pixel limit.
    """

    def __init__(
        self,
        extractor: Extractor,
        batcher: DynamicBatcher,
        metrics: Metrics,
        *,
        max_images: int,
        max_pixels: int,
        decode_workers: int | None = None,
    ) -> None:
        self.extractor = extractor
        self.batcher = batcher
        self.metrics = metrics
        self.max_images = max_images
        self.preprocess: PreprocessConfig = replace(extractor.preprocess, max_pixels=max_pixels)
        workers = decode_workers or min(8, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reid-http-decode")
        # With gpu_decode the pool only reads and checks images; JPEGs are decoded on the model's GPU.
        self._device_decoder = extractor.device_decoder(self.preprocess, observe=metrics.count_decoded)

    @property
    def fingerprint(self) -> str:
        return self.extractor.fingerprint

    @property
    def dim(self) -> int:
        return self.extractor.dim

    def match_threshold(self, fmr: float | None) -> float | None:
        """The cosine score that makes a hit a match at false-match rate ``fmr``, when the weights' manifest
        holds one measured for this embedding function (``reid eval --save-thresholds``)."""
        return None if fmr is None else self.extractor.match_thresholds.get(fmr)

    def check_count(self, n: int) -> None:
        if n == 0:
            raise InvalidImage("the request holds no image")
        if n > self.max_images:
            raise TooManyImages(f"{n} images in one request; the limit is {self.max_images}")

    def _prepare(self, item: ImageInput, index: int) -> torch.Tensor | DeviceJpeg:
        data = decode_base64(item, index) if isinstance(item, str) else item
        if self._device_decoder is not None:
            return self._device_decoder.plan(data, index)
        return prepare_image(data, self.preprocess, index=index)

    async def decode(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """uint8 (n, 3, H, W); raises the error of the lowest-indexed bad image."""
        self.check_count(len(images))
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(self._pool, self._prepare, item, i) for i, item in enumerate(images)),
            return_exceptions=True,
        )
        planned: list[torch.Tensor | DeviceJpeg] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            planned.append(result)
        if self._device_decoder is None:
            self.metrics.count_decoded("pillow", len(planned))
            return torch.stack([item for item in planned if isinstance(item, torch.Tensor)])
        finished = await loop.run_in_executor(self._pool, self._device_decoder.finish, planned)
        return stack_prepared(finished, self.preprocess)

    async def embed(self, images: Sequence[ImageInput], *, normalize: bool = True) -> Embedded:
        started = time.perf_counter()
        batch = await self.decode(images)
        decoded = time.perf_counter()
        result = await self.batcher.embed(batch, normalize=normalize)
        return Embedded(
            result.vectors, decoded - started, result.queue_time_s, result.inference_time_s, result.batch_size
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
