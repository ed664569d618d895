from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import safetensors.torch
import torch
from fastapi.testclient import TestClient

from app import inference
from app.main import create_app
from reid.checkpoints import write_checkpoint_manifest
from reid.engine import Extractor
from reid.models import ReIDModel, reid_config
from reid.preprocess import PreprocessConfig
from tests.app.helpers import (
    async_client,
    files,
    gated_extractor,
    image_bytes,
    metric_samples,
    settings_for,
    wait_ready,
)
from tests.helpers import tiny_extractor


class SlowStart(Extractor):
    """Warm-up waits for ``release``: the service stays in its loading phase until the test says so."""

    release: threading.Event

    def warmup(self, batch_sizes=(1,)) -> None:
        assert self.release.wait(timeout=30)
        super().warmup(batch_sizes)


def test_readiness_flips_after_warm_up(tmp_path):
    extractor = tiny_extractor(SlowStart)
    assert isinstance(extractor, SlowStart)
    extractor.release = threading.Event()
    with TestClient(create_app(settings_for(tmp_path), extractor=extractor)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        loading = client.get("/readyz")
        assert loading.status_code == 503
        assert loading.json()["error"] == "not_ready"
        refused = client.post("/embed", files=files(image_bytes(0)))
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/info").status_code == 503
        extractor.release.set()
        wait_ready(client)
        assert client.post("/embed", files=files(image_bytes(0))).status_code == 200
    extractor.close()


def failed_start(client: TestClient) -> str:
    """The reason ``/healthz`` gives once start-up has failed (it answers 200 while loading)."""
    for _ in range(500):
        health = client.get("/healthz")
        if health.status_code == 503:
            return str(health.json()["detail"])
        time.sleep(0.01)
    raise AssertionError("start-up never failed")


def test_failed_start_is_reported(tmp_path):
    settings = settings_for(tmp_path, weights=tmp_path / "missing.safetensors")
    with TestClient(create_app(settings)) as client:
        assert "does not exist" in failed_start(client)
        assert client.get("/readyz").status_code == 503


def test_unreachable_milvus_fails_the_start_with_the_reason(tmp_path, extractor):
    pytest.importorskip("pymilvus")
    settings = settings_for(tmp_path, gallery_backend="milvus", milvus_uri="http://127.0.0.1:9")
    with TestClient(create_app(settings, extractor=extractor)) as client:
        assert "GalleryUnavailable: Milvus" in failed_start(client)
        assert client.get("/readyz").status_code == 503


def test_info_describes_model_batching_and_gallery(make_client, extractor):
    client = make_client(max_batch_size=8, max_batch_delay_ms=7.5, max_pixels=123456)
    client.post("/gallery", files=files(image_bytes(0)))
    info = client.get("/info").json()
    assert info["model"] == extractor.fingerprint
    assert (info["dim"], info["device"], info["dtype"], info["input_size"]) == (
        512,
        "cpu",
        "float32",
        [64, 32],
    )
    assert info["batching"] == {
        "max_batch_size": 8,
        "max_batch_delay_ms": 7.5,
        "max_queue": 64,
        "queued_images": 0,
    }
    assert info["limits"]["max_pixels"] == 123456
    assert (info["gallery_size"], info["gallery_index"]) == (1, "Flat")


def test_metrics_record_requests_by_route_template(client):
    client.post("/embed", files=files(image_bytes(0), image_bytes(1)))
    client.get("/gallery/999")
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    latency = metric_samples(response.text, "reid_request_latency_seconds_count")
    assert latency[(("route", "/embed"), ("status", "200"))] == 1
    assert latency[(("route", "/gallery/{item_id}"), ("status", "404"))] == 1
    assert latency[(("route", "unmatched"), ("status", "404"))] == 1
    # warm-up forwards run outside the batcher, so only the request's two images count
    assert metric_samples(response.text, "reid_images_embedded_total")[()] == 2
    assert metric_samples(response.text, "reid_decoded_images_total") == {(("decoder", "pillow"),): 2}
    for name in (
        "reid_queue_time_seconds_count",
        "reid_inference_time_seconds_count",
        "reid_batch_size_count",
    ):
        assert metric_samples(response.text, name)[()] == 1
    assert metric_samples(response.text, "reid_queue_depth")[()] == 0


def test_concurrent_requests_share_batches(tmp_path, extractor):
    app = create_app(settings_for(tmp_path, max_batch_delay_ms=300), extractor=extractor)
    images = [image_bytes(seed) for seed in range(16)]

    async def scenario():
        async with async_client(app) as http:
            responses = await asyncio.gather(*(http.post("/embed", files=files(i)) for i in images))
            return responses, (await http.get("/metrics")).text

    responses, metrics = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in responses)
    assert max(int(r.headers["x-batch-size"]) for r in responses) > 1
    count = metric_samples(metrics, "reid_batch_size_count")[()]
    total = metric_samples(metrics, "reid_batch_size_sum")[()]
    assert total == 16
    assert count < 16  # at least one forward held several requests
    got = np.asarray([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, extractor.embed(images), atol=1e-5)  # batching never mixes rows up


def test_full_queue_answers_429_with_retry_after(tmp_path):
    extractor = gated_extractor()
    settings = settings_for(
        tmp_path, max_queue=1, max_images_per_request=1, max_batch_size=1, max_batch_delay_ms=0
    )
    app = create_app(settings, extractor=extractor)

    async def wait_for(condition) -> None:
        for _ in range(1000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition never held")

    async def scenario():
        async with async_client(app) as http:
            extractor.gate.clear()
            extractor.entered.clear()
            running = asyncio.create_task(http.post("/embed", files=files(image_bytes(0))))
            await wait_for(extractor.entered.is_set)  # first request is in the model
            batcher = app.state.service.embedder.batcher
            queued = asyncio.create_task(http.post("/embed", files=files(image_bytes(1))))
            await wait_for(lambda: batcher.queued_images == 1)  # second one waits in the queue
            refused = await http.post("/embed", files=files(image_bytes(2)))
            extractor.gate.set()
            return refused, await running, await queued

    refused, first, second = asyncio.run(scenario())
    assert refused.status_code == 429
    assert refused.json()["error"] == "queue_full"
    assert int(refused.headers["retry-after"]) >= 1
    assert (first.status_code, second.status_code) == (200, 200)
    extractor.close()


def test_decoding_runs_off_the_event_loop(client, monkeypatch):
    loop_threads: set[str] = set()
    decode_threads: set[str] = set()
    original = inference.prepare_image

    def spy(*args, **kwargs) -> torch.Tensor:
        decode_threads.add(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(inference, "prepare_image", spy)
    client.portal.call(lambda: loop_threads.add(threading.current_thread().name))
    assert client.post("/embed", files=files(image_bytes(0), image_bytes(1))).status_code == 200
    assert decode_threads
    assert not decode_threads & loop_threads


def test_info_publishes_the_preprocessing_contract_of_the_loaded_checkpoint(tmp_path):
    cfg = reid_config("resnet18")
    weights = tmp_path / "weights" / "market_r18.safetensors"
    weights.parent.mkdir()
    safetensors.torch.save_file(ReIDModel(cfg).state_dict(), weights)
    manifest = write_checkpoint_manifest(
        weights, config=cfg, preprocess=PreprocessConfig.fastreid(height=64, width=32)
    )
    settings = settings_for(tmp_path, weights=weights.parent, max_batch_size=2, flip=True)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        contract = client.get("/info").json()["preprocessing"]
    wanted = manifest.preprocess
    assert contract == {
        "input_size": [wanted.height, wanted.width],
        "resize": "stretch",
        "interpolation": wanted.interpolation,
        "colour_order": "RGB",
        "pixel_range": wanted.pixel_range,
        "mean": pytest.approx(list(wanted.mean)),
        "std": pytest.approx(list(wanted.std)),
        "l2_normalized": True,
        "flip": True,
    }
    assert (contract["input_size"], contract["interpolation"], contract["pixel_range"]) == (
        [64, 32],
        "bicubic",
        255,
    )
