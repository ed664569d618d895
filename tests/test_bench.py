"""The benchmark's arithmetic (cosines, ratios, interleaved timing) and a tiny end-to-end run."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from reid import bench
from reid.bench import (
    BenchConfig,
    Variant,
    bench_model,
    calibrate_batchnorm,
    gflop_per_image,
    max_cross_cosine,
    min_cosine,
    run_benchmark,
    synthetic_jpegs,
    time_interleaved,
)
from reid.errors import ConfigError
from reid.models import create_reid_model
from reid.optimize import OptimizeOptions, optimize_model
from reid.preprocess import PreprocessConfig, Preprocessor, normalize

CPU = torch.device("cpu")
TINY = PreprocessConfig(height=64, width=32)


def _np_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([x @ y / np.sqrt((x @ x) * (y @ y)) for x, y in zip(a, b, strict=True)])


def test_min_cosine_matches_a_hand_computation():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, -1.0], [4.0, 3.0]])
    # rows: parallel (1), orthogonal (0), 24/25
    assert min_cosine(a, b) == pytest.approx(0.0, abs=1e-12)
    assert min_cosine(a[[0, 2]], b[[0, 2]]) == pytest.approx(24 / 25, abs=1e-12)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    assert min_cosine(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(
        _np_cosines(x, y).min(), abs=1e-6
    )


def test_max_cross_cosine_ignores_each_row_with_itself():
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    assert max_cross_cosine(feats) == pytest.approx(np.sqrt(0.5), abs=1e-12)


def test_time_interleaved_runs_round_robin_until_each_share_is_spent():
    order: list[str] = []

    def call(name: str, seconds: float):
        def run() -> float:
            order.append(name)
            return seconds

        return run

    durations = time_interleaved({"a": call("a", 0.4), "b": call("b", 1.5)}, min_time=2.0, rounds=2)
    # share = 1 s per round: "a" needs 3 calls (0.4 × 3 ≥ 1), "b" one.
    assert order == ["a", "a", "a", "b", "a", "a", "a", "b"]
    assert durations == {"a": [0.4] * 6, "b": [1.5, 1.5]}


def test_synthetic_jpegs_are_distinct_deterministic_jpegs():
    first = synthetic_jpegs(3, (40, 20), seed=1)
    assert first == synthetic_jpegs(3, (40, 20), seed=1)
    assert len(set(first)) == 3
    with Image.open(io.BytesIO(first[0])) as image:
        assert (image.format, image.size) == ("JPEG", (20, 40))


def test_calibrate_batchnorm_sets_the_batch_statistics_and_copies():
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3)
    model = nn.Sequential(conv, norm).eval()
    x = torch.randn(5, 3, 8, 8)
    calibrated = calibrate_batchnorm(model, [x])
    with torch.no_grad():
        per_channel = conv(x).double().numpy().transpose(1, 0, 2, 3).reshape(4, -1)
    bn = calibrated[1]
    assert isinstance(bn, nn.BatchNorm2d)
    assert bn.running_mean is not None
    assert bn.running_var is not None
    assert np.allclose(bn.running_mean.numpy(), per_channel.mean(1), atol=1e-5)
    assert np.allclose(bn.running_var.numpy(), per_channel.var(1, ddof=1), atol=1e-5)
    assert not calibrated.training
    assert bn.momentum == 0.3
    assert norm.running_mean is not None
    assert torch.equal(norm.running_mean, torch.zeros(4))  # the original keeps its statistics


def test_config_resolution(monkeypatch):
    config = BenchConfig(variants=("channels_last",))
    assert [v.name for v in config.resolve_variants(CPU)] == ["fp32", "channels_last"]
    assert config.resolve_batch_sizes(CPU) == (1, 8, 32)
    assert BenchConfig(batch_sizes=(8, 1, 8)).resolve_batch_sizes(CPU) == (1, 8)
    with pytest.raises(ConfigError, match="unknown variant"):
        BenchConfig(variants=("fp16",)).resolve_variants(CPU)
    with pytest.raises(ConfigError, match="batch sizes"):
        BenchConfig(batch_sizes=(0,))
    monkeypatch.setattr(bench, "native_bf16_cpu", lambda: False)
    assert "bf16+compile" not in [v.name for v in BenchConfig().resolve_variants(CPU)]
    monkeypatch.setattr(bench, "native_bf16_cpu", lambda: True)
    assert "bf16+compile" in [v.name for v in BenchConfig().resolve_variants(CPU)]


def test_bench_model_reports_ratios_and_cosines_of_each_variant():
    torch.manual_seed(0)
    with Preprocessor(TINY, workers=1) as pre:
        images = pre.prepare_batch(synthetic_jpegs(4, (64, 32)))
    model = calibrate_batchnorm(create_reid_model("resnet18"), [normalize(images, TINY)])
    variants = [
        Variant("fp32", OptimizeOptions(channels_last=False)),
        Variant("bf16", OptimizeOptions(dtype=torch.bfloat16)),
    ]
    results = bench_model(model, images, TINY, variants, (1, 6), device=CPU, min_time=0.02, rounds=2)

    assert [(r.variant, r.batch_size) for r in results] == [
        ("fp32", 1),
        ("bf16", 1),
        ("fp32", 6),
        ("bf16", 6),
    ]
    for base, other in (results[:2], results[2:]):
        assert base.ratio == 1.0
        assert other.ratio == pytest.approx(other.images_per_s / base.images_per_s)
        assert base.cosine_min == pytest.approx(1.0, abs=1e-12)
        assert min(base.calls, other.calls) >= 2  # at least one call per round
    # Independently: batch 6 repeats the 4 images; bf16 against fp32 eager, cosine by numpy.
    batch = normalize(images[[0, 1, 2, 3, 0, 1]], TINY)
    with torch.inference_mode():
        expected = model(batch).numpy()
        got = optimize_model(model, variants[1].options, CPU)(batch).numpy()
    assert results[3].cosine_min == pytest.approx(_np_cosines(got, expected).min(), abs=1e-6)
    assert results[3].cosine_min < 1 - 1e-6


def test_flops_count_a_multiply_add_as_two():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    # 4 output channels × 8×4 positions × (3 channels × 3×3 taps) multiply-adds, two FLOPs each.
    assert gflop_per_image(conv, PreprocessConfig(height=8, width=4)) == pytest.approx(2 * 4 * 32 * 27 / 1e9)


def test_run_benchmark_end_to_end(tmp_path):
    config = BenchConfig(
        preset="resnet18",
        height=64,
        width=32,
        batch_sizes=(2,),
        variants=("fold_bn",),
        min_time=0.02,
        rounds=1,
        decode_threads=(1, 2),
    )
    report = run_benchmark(config)
    assert [(r.variant, r.batch_size) for r in report.model] == [("fp32", 2), ("fold_bn", 2)]
    assert report.model[1].cosine_min > 0.9999
    assert -1 <= report.inter_image_cosine_max < 0.99  # calibrated: different pictures, different features
    assert [d.threads for d in report.decode] == [1, 2]
    assert all(d.images_per_s > 0 and d.source_size == (64, 32) for d in report.decode)
    assert report.input_size == (64, 32)
    text = report.format()
    assert "fold_bn" in text
    assert "decode+preprocess" in text
    assert "x fp32" in text
    assert "% peak" in text
    assert report.gflop_per_image == pytest.approx(gflop_per_image(create_reid_model("resnet18"), TINY))
    assert report.fp32_peak_gflops > 1
    assert report.percent_of_peak(report.model[0]) == pytest.approx(
        100 * report.model[0].images_per_s * report.gflop_per_image / report.fp32_peak_gflops
    )
    round_trip = json.loads(json.dumps(report.to_dict()))
    assert round_trip["model"][1]["variant"] == "fold_bn"


def test_runtimes_run_side_by_side_with_their_error_to_fp32():
    pytest.importorskip("openvino")
    config = BenchConfig(
        preset="resnet18",
        height=64,
        width=32,
        batch_sizes=(3,),
        variants=("onnxruntime", "openvino"),
        runtimes=("openvino",),
        min_time=0.02,
        rounds=1,
        decode_threads=(1,),
    )
    report = run_benchmark(config)
    assert [r.variant for r in report.model] == ["fp32", "openvino"]  # onnxruntime's runtime is not on
    base, *others = report.model
    assert base.relative_error == 0.0
    for result in others:
        assert result.ratio == pytest.approx(result.images_per_s / base.images_per_s)
        assert result.relative_error < 0.01  # fp32 artifacts: far below the distance between images
    assert "openvino artifact" in report.format()
    # torch's own variants only run when torch is among the runtimes.
    mixed = BenchConfig(runtimes=("openvino",), variants=("channels_last", "openvino"))
    assert [v.name for v in mixed.resolve_variants(CPU)] == ["fp32", "openvino"]
    with pytest.raises(ConfigError, match="runtimes must be among"):
        BenchConfig(runtimes=("tflite",))


def test_bench_on_an_exported_artifact_uses_its_source_as_baseline(
    openvino_artifact: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    shutil.copy(tiny_checkpoint, tmp_path / tiny_checkpoint.name)
    shutil.copytree(openvino_artifact.parent, tmp_path / "ov")
    config = BenchConfig(
        weights=str(tmp_path / "ov" / openvino_artifact.name),
        batch_sizes=(2,),
        variants=(),
        min_time=0.02,
        rounds=1,
        decode_threads=(1,),
    )
    report = run_benchmark(config)
    assert [r.variant for r in report.model] == ["fp32", "artifact"]
    assert report.model[1].relative_error < 0.01
    assert str(openvino_artifact.name) in report.variants["artifact"]
    with pytest.raises(ConfigError, match="outside"):
        run_benchmark(replace(config, batch_sizes=(64,)))
    (tmp_path / tiny_checkpoint.name).unlink()
    with pytest.raises(ConfigError, match="needs its source checkpoint"):
        run_benchmark(config)
