"""Pinned, side-stream host → GPU uploads (the engine's input path on a GPU)."""

from __future__ import annotations

import pytest
import torch

from reid.engine import EngineOptions
from reid.export.verify import relative_error
from reid.transfer import PinnedUploader
from tests.helpers import calibrated_extractor, smooth_images


def test_only_for_cuda_devices() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        PinnedUploader(torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_uploads_are_exact_and_buffers_are_reused() -> None:
    uploader = PinnedUploader(torch.device("cuda"))
    chunks = [torch.randint(0, 256, (n, 3, 8, 4), dtype=torch.uint8) for n in (5, 2, 5, 7, 1)]
    with torch.inference_mode():
        copies = [uploader.upload(chunk) for chunk in chunks]
        for chunk, copy in zip(chunks, copies, strict=True):
            assert copy.device.type == "cuda"
            assert torch.equal(copy.cpu(), chunk)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_chunked_gpu_embeddings_match_the_cpu() -> None:
    images = smooth_images(8, 64, 32, seed=2)
    cpu = calibrated_extractor().embed_batch(images)
    gpu = calibrated_extractor(options=EngineOptions(device="cuda", dtype="fp32", max_batch_size=3))
    # TF32 convolutions on recent GPUs: judged against the distance between images, not bit for bit.
    error, _ = relative_error(cpu, gpu.embed_batch(images))
    assert error <= 0.01
