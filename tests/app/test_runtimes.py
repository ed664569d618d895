"""The service on exported artifacts: REID_WEIGHTS names an ONNX or OpenVINO artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from reid.engine import EngineOptions, load_extractor
from reid.export.verify import relative_error
from reid.runtimes.artifact import THRESHOLDS
from tests.app.helpers import files, image_bytes, settings_for, wait_ready

IMAGES = [image_bytes(seed) for seed in range(4)]


@pytest.mark.parametrize(
    ("artifact_fixture", "runtime"), [("onnx_artifact", "onnxruntime"), ("openvino_artifact", "openvino")]
)
def test_embed_on_an_artifact_matches_torch(
    artifact_fixture: str, runtime: str, request: pytest.FixtureRequest, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    artifact: Path = request.getfixturevalue(artifact_fixture)
    reference = load_extractor(tiny_checkpoint, options=EngineOptions(device="cpu"))
    settings = settings_for(tmp_path, weights=artifact.parent, device="cpu")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        response = client.post("/embed", files=files(*IMAGES))
        assert response.status_code == 200
        body = response.json()
        info = client.get("/info").json()
    got = np.asarray([item["embedding"] for item in body["data"]], dtype=np.float32)
    error, _ = relative_error(reference.embed(IMAGES), got)
    assert error <= THRESHOLDS["fp32"]
    assert body["model"] == reference.fingerprint
    assert info["runtime"] == runtime
    reference.close()


def test_runtime_setting_reaches_the_engine_and_is_validated(tmp_path: Path) -> None:
    assert settings_for(tmp_path).engine_options().runtime == "auto"
    assert settings_for(tmp_path, runtime="openvino").engine_options().runtime == "openvino"
    with pytest.raises(ValidationError, match="runtime"):
        settings_for(tmp_path, runtime="tflite")


def test_a_runtime_without_its_artifact_fails_start_up_clearly(tiny_checkpoint: Path, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, weights=tiny_checkpoint, runtime="onnxruntime", device="cpu")
    with TestClient(create_app(settings)) as client:
        for _ in range(500):
            response = client.get("/readyz")
            if response.status_code == 503 and "failed to start" in response.text:
                break
        assert "no onnxruntime artifact" in response.text
