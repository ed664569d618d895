"""TensorRT and ONNX Runtime's CUDA execution provider: only where an NVIDIA GPU is at hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reid.bench import BenchConfig, run_benchmark
from reid.engine import EngineOptions, load_extractor
from reid.export import ExportOptions, export_checkpoint
from reid.export.verify import relative_error
from reid.runtimes import BatchProfile
from reid.runtimes.artifact import THRESHOLDS, read_artifact_manifest
from tests.helpers import smooth_images

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
GPU = EngineOptions(device="cuda")


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_tensorrt_round_trip_matches_eager_at_batch_1_and_7(
    tiny_checkpoint: Path, tmp_path: Path, dtype
) -> None:
    pytest.importorskip("torch_tensorrt")
    options = ExportOptions(format="tensorrt", dtype=dtype, batch=BatchProfile(1, 8, 16), num_samples=8)
    result = export_checkpoint(tiny_checkpoint, options, tmp_path)
    manifest = read_artifact_manifest(result.path)
    assert result.path.suffix == ".ep"
    assert manifest.runtime == "tensorrt"
    assert manifest.verification.passed
    images = smooth_images(7, 64, 32, seed=11)
    reference = load_extractor(tiny_checkpoint, options=EngineOptions(device="cpu")).embed_batch(images)
    exported = load_extractor(tmp_path, options=GPU)  # runtime from the suffix
    assert exported.runtime.name == "tensorrt"
    for size in (1, 7):
        got = np.concatenate([exported.embed_batch(images[i : i + size]) for i in range(0, 7, size)])
        error, _ = relative_error(reference, got)
        assert error <= THRESHOLDS[dtype]


def test_tensorrt_fp16_engines_hold_half_width_weights(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """An ignored precision option builds fp32 silently (torch-tensorrt drops unknown keywords); the
    weights inside the engines (resnet18: 45 MB in fp32) show which precision was built."""
    pytest.importorskip("torch_tensorrt")
    sizes = {}
    for dtype in ("fp32", "fp16"):
        options = ExportOptions(format="tensorrt", dtype=dtype, batch=BatchProfile(1, 4, 8), num_samples=4)
        sizes[dtype] = export_checkpoint(tiny_checkpoint, options, tmp_path / dtype).path.stat().st_size
    assert sizes["fp16"] < 0.75 * sizes["fp32"], sizes


def test_tensorrt_with_cuda_graphs_matches_without(tiny_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch_tensorrt")
    options = ExportOptions(format="tensorrt", dtype="fp16", batch=BatchProfile(2, 8, 16), num_samples=8)
    export_checkpoint(tiny_checkpoint, options, tmp_path)
    images = smooth_images(11, 64, 32, seed=12)
    plain = load_extractor(tmp_path, options=EngineOptions(device="cuda", flip=True))
    graphed = load_extractor(
        tmp_path, options=EngineOptions(device="cuda", flip=True, cuda_graphs=True, max_batch_size=8)
    )
    assert graphed.info()["cuda_graphs"] is True
    assert graphed.runtime.warmup_sizes == (2, 4, 8)  # buckets within the profile (min 2)
    graphed.warmup()
    reference = plain.embed_batch(images)
    for size in (1, 3, 8, 11):
        got = np.concatenate([graphed.embed_batch(images[i : i + size]) for i in range(0, 11, size)])
        np.testing.assert_allclose(got, reference, atol=1e-3)
    graphed.close()
    plain.close()


def test_onnxruntime_cuda_provider_matches_eager(onnx_artifact: Path, tiny_checkpoint: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    exported = load_extractor(onnx_artifact, options=GPU)
    assert "CUDAExecutionProvider" in exported.info()["providers"]
    images = smooth_images(7, 64, 32, seed=11)
    reference = load_extractor(tiny_checkpoint, options=EngineOptions(device="cpu")).embed_batch(images)
    error, _ = relative_error(reference, exported.embed_batch(images))
    assert error <= THRESHOLDS["fp32"]


def test_onnx_fp16_on_the_cuda_provider_matches_eager(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    options = ExportOptions(format="onnx", dtype="fp16", batch=BatchProfile(1, 8, 16), num_samples=8)
    result = export_checkpoint(tiny_checkpoint, options, tmp_path)
    exported = load_extractor(result.path, options=GPU)
    assert "CUDAExecutionProvider" in exported.info()["providers"]
    images = smooth_images(7, 64, 32, seed=11)
    reference = load_extractor(tiny_checkpoint, options=EngineOptions(device="cpu")).embed_batch(images)
    error, _ = relative_error(reference, exported.embed_batch(images))
    assert error <= THRESHOLDS["fp16"]


def test_bench_puts_tensorrt_beside_eager() -> None:
    pytest.importorskip("torch_tensorrt")
    config = BenchConfig(
        preset="resnet18",
        height=64,
        width=32,
        batch_sizes=(8,),
        variants=("tensorrt-fp16",),
        runtimes=("tensorrt",),
        min_time=0.05,
        rounds=1,
        decode_threads=(1,),
    )
    report = run_benchmark(config)
    assert [r.variant for r in report.model] == ["fp32", "tensorrt-fp16"]
    assert report.model[1].relative_error < 0.2
