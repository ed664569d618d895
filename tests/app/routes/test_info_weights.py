"""``/info`` names the zoo entry and its published metrics when the service started from a zoo name; the
service's settings carry the cache, offline mode and zoo file."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.helpers import settings_for, wait_ready
from tests.zoo.helpers import LoopbackServer, fastreid_checkpoint, write_zoo


def test_info_shows_the_zoo_name_and_published_metrics(tmp_path: Path) -> None:
    server = LoopbackServer()
    server.files["model.pth"] = fastreid_checkpoint()
    entry = {
        "family": "tiny-agw",
        "url": server.url("model.pth"),
        "architecture": "resnet18_ibn_a",
        "dataset": "Market-1501",
        "metrics": {"rank1": 90.5, "mAP": 80.25},
    }
    zoo = write_zoo(tmp_path / "zoo.json", {"test/agw_tiny": entry})
    settings = settings_for(
        tmp_path,
        weights="test/agw_tiny",
        home=tmp_path / "home",
        zoo_file=zoo,
        device="cpu",
        gallery_dir="",
        max_batch_size=1,
    )
    with server.running(), TestClient(create_app(settings)) as client:
        wait_ready(client, timeout=120)
        info = client.get("/info").json()
    assert info["input_size"] == [256, 128]
    assert info["weights"] == {
        "name": "test/agw_tiny",
        "url": server.url("model.pth"),
        "sha256": info["weights"]["sha256"],
        "dataset": "Market-1501",
        "metrics": {"rank1": 90.5, "mAP": 80.25},
    }
    assert len(info["weights"]["sha256"]) == 64


def test_offline_start_without_the_weights_fails_naming_them(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, weights="fastreid/market_bot_R50-ibn", home=tmp_path / "home", offline=True, gallery_dir=""
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while "failed" not in (ready := client.get("/readyz")).text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.status_code == 503
        assert "fastreid/market_bot_R50-ibn is not in the weights cache" in ready.text


def test_random_weights_have_no_origin(shared_client: TestClient) -> None:
    assert shared_client.get("/info").json()["weights"] is None
