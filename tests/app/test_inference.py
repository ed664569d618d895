"""The service with JPEGs decoded on the model's device (``REID_GPU_DECODE``): here the device decoder runs on
the CPU, which exercises the whole request path short of nvJPEG itself."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from reid.device_decode import DecodeObserver, DeviceJpegDecoder
from reid.engine import Extractor
from reid.export.verify import synthetic_jpegs
from reid.preprocess import PreprocessConfig
from tests.app.helpers import b64, files, image_bytes, metric_samples, settings_for, wait_ready
from tests.helpers import tiny_extractor

pytest.importorskip("torchcodec")


class DeviceDecodingExtractor(Extractor):
    """Decodes on the CPU as ``gpu_decode`` would on the GPU (an Extractor refuses gpu_decode on a CPU)."""

    def device_decoder(
        self, preprocess: PreprocessConfig, observe: DecodeObserver | None = None
    ) -> DeviceJpegDecoder:
        return DeviceJpegDecoder(preprocess, self.device, observe=observe)


def test_embed_with_device_decoding_matches_the_pillow_path(tmp_path, extractor: Extractor):
    device_extractor = tiny_extractor(DeviceDecodingExtractor)
    images = [*synthetic_jpegs(3, (256, 112), seed=3), image_bytes(1, fmt="PNG")]
    with TestClient(create_app(settings_for(tmp_path), extractor=device_extractor)) as client:
        wait_ready(client)
        response = client.post("/embed", files=files(*images))
        assert response.status_code == 200, response.text
        ours = np.asarray([item["embedding"] for item in response.json()["data"]], dtype=np.float32)
        bad = client.post("/embed", json={"images": [b64(images[0]), b64(images[1][:200] + b"\xff\xd9")]})
        decoded = metric_samples(client.get("/metrics").text, "reid_decoded_images_total")
    device_extractor.close()
    # The JPEGs of the first request went to the device, its PNG to Pillow; the bad request never got there.
    assert decoded == {(("decoder", "device"),): 3, (("decoder", "pillow"),): 1}
    theirs = extractor.embed(images)
    between = float(np.median([np.linalg.norm(theirs[i] - theirs[j]) for i in range(4) for j in range(i)]))
    assert float(np.linalg.norm(ours - theirs, axis=1).max()) < 0.05 * between
    assert bad.status_code == 422, bad.text
    assert bad.json()["detail"].startswith("image 1")
