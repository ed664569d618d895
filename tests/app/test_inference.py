"""The service with JPEGs decoded on the model's device (``REID_GPU_DECODE``): here the device decoder runs on
the CPU, which exercises the whole request path short of nvJPEG itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from reid.device_decode import DeviceJpeg, DeviceJpegDecoder
from reid.engine import Extractor
from reid.errors import ReidError
from reid.export.verify import synthetic_jpegs
from reid.preprocess import PreprocessConfig
from tests.app.helpers import b64, files, image_bytes, settings_for, wait_ready
from tests.helpers import tiny_extractor

pytest.importorskip("torchcodec")


class CountingDecoder(DeviceJpegDecoder):
    decoded = 0

    def _decode(self, jobs: list[DeviceJpeg]) -> list[torch.Tensor | ReidError]:
        CountingDecoder.decoded += len(jobs)
        return super()._decode(jobs)


class DeviceDecodingExtractor(Extractor):
    """Decodes on the CPU as ``gpu_decode`` would on the GPU (an Extractor refuses gpu_decode on a CPU)."""

    def device_decoder(self, preprocess: PreprocessConfig) -> DeviceJpegDecoder:
        return CountingDecoder(preprocess, self.device)


def test_embed_with_device_decoding_matches_the_pillow_path(tmp_path, extractor: Extractor):
    device_extractor = tiny_extractor(DeviceDecodingExtractor)
    images = [*synthetic_jpegs(3, (256, 112), seed=3), image_bytes(1, fmt="PNG")]
    with TestClient(create_app(settings_for(tmp_path), extractor=device_extractor)) as client:
        wait_ready(client)
        response = client.post("/embed", files=files(*images))
        assert response.status_code == 200, response.text
        ours = np.asarray([item["embedding"] for item in response.json()["data"]], dtype=np.float32)
        bad = client.post("/embed", json={"images": [b64(images[0]), b64(images[1][:200] + b"\xff\xd9")]})
    device_extractor.close()
    assert CountingDecoder.decoded == 3  # the JPEGs of the first request; the PNG went to Pillow
    theirs = extractor.embed(images)
    between = float(np.median([np.linalg.norm(theirs[i] - theirs[j]) for i in range(4) for j in range(i)]))
    assert float(np.linalg.norm(ours - theirs, axis=1).max()) < 0.05 * between
    assert bad.status_code == 422, bad.text
    assert bad.json()["detail"].startswith("image 1")
