"""Helpers for the service tests: images, settings, clients that wait for readiness (the tiny model comes
from :mod:`tests.helpers`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from reid.engine import Extractor
from tests.helpers import tiny_extractor


def image_bytes(seed: int, *, size: tuple[int, int] = (40, 80), fmt: str = "JPEG") -> bytes:
    """A distinct picture per seed: smooth colour blobs, so JPEG keeps them apart."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 2, 3), dtype=np.uint8)
    picture = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    picture.save(out, fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def files(*images: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"img{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        time.sleep(0.02)


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "weights": None,
        "gallery_dir": tmp_path / "gallery",
        "max_batch_size": 4,  # warm-up runs one full batch: keep it small
        "max_images_per_request": 16,
        "max_queue": 64,
        "decode_workers": 2,
    }
    return Settings(**{**base, **overrides})


def gallery_settings(backend: str, tmp_path: Path) -> dict[str, Any]:
    """Settings overrides that put the service's gallery on ``backend`` under ``tmp_path``."""
    if backend == "milvus":
        return {"gallery_backend": "milvus", "milvus_uri": str(tmp_path / "gallery.db")}
    return {"gallery_dir": tmp_path / "gallery"}


@contextlib.asynccontextmanager
async def async_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan in this event loop and talk to it without a socket, once it is ready."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
            for _ in range(1500):
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.02)
            yield http


class GatedExtractor(Extractor):
    """Forwards wait for ``gate`` (open at first); ``entered`` is set when a forward starts waiting."""

    gate: threading.Event
    entered: threading.Event

    def embed_batch(self, batch: torch.Tensor, *, normalize_output: bool = True) -> np.ndarray:
        self.entered.set()
        assert self.gate.wait(timeout=30), "test gate never opened"
        return super().embed_batch(batch, normalize_output=normalize_output)


def gated_extractor() -> GatedExtractor:
    ex = tiny_extractor(GatedExtractor)
    assert isinstance(ex, GatedExtractor)
    ex.gate, ex.entered = threading.Event(), threading.Event()
    ex.gate.set()
    return ex


def metric_samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric from Prometheus text, keyed by their sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found
