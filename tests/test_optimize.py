"""Speed transformations keep the model's outputs: folding exactly, low precision within a bound."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from reid import optimize
from reid.bench import calibrate_batchnorm
from reid.errors import ConfigError
from reid.models import create_reid_model
from reid.optimize import (
    OptimizeOptions,
    batch_buckets,
    compile_model,
    fold_batchnorm,
    optimize_model,
    pad_to_bucket,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def calibrated() -> tuple[nn.Module, torch.Tensor]:
    """A small IBN-a model whose BN statistics are those of its input, and that input."""
    torch.manual_seed(0)
    model = create_reid_model("resnet18_ibn_a").eval()
    x = torch.randn(4, 3, 64, 32)
    return calibrate_batchnorm(model, [x]), x


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def _cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    a64, b64 = a.double().numpy(), b.double().numpy()
    return (a64 * b64).sum(1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)


def test_fold_batchnorm_is_exact_and_removes_the_folded_norms(calibrated):
    # In float64, so that what is left is the folding's error, not float32 rounding (about 1e-5 relative
    # here: the calibrated BNNeck divides by small standard deviations).
    model, x = calibrated
    model64 = copy.deepcopy(model).double()
    folded = fold_batchnorm(model64)
    with torch.inference_mode():
        expected, got = model64(x.double()), folded(x.double())
    assert float((got - expected).norm() / expected.norm()) < 1e-10
    # resnet18_ibn_a has 20 BatchNorm2d: stem, bn2 of 8 units, bn1 of layer4's 2 units, 3 shortcuts
    # (14 conv→BN pairs) and the BN halves of the 6 IBN-a units, which follow a split and must stay.
    assert _count(folded, nn.BatchNorm2d) == 6
    assert _count(model, nn.BatchNorm2d) == 20  # the original is untouched


def test_fold_batchnorm_refuses_a_training_model():
    with pytest.raises(ConfigError, match="eval mode"):
        fold_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train())


def test_optimize_model_leaves_the_model_alone(calibrated):
    model, x = calibrated
    before = {k: v.clone() for k, v in model.state_dict().items()}
    forward = optimize_model(model, OptimizeOptions(fold_bn=True, channels_last=True), CPU)
    with torch.inference_mode():
        forward(x)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.backbone.conv1.weight.is_contiguous()  # not switched to channels_last


@pytest.mark.parametrize("options", [OptimizeOptions(channels_last=False), OptimizeOptions(fold_bn=True)])
def test_fp32_paths_match_eager(calibrated, options):
    model, x = calibrated
    with torch.inference_mode():
        expected = model(x)
        got = optimize_model(model, options, CPU)(x)
    assert got.dtype == torch.float32
    # float32 rounding level: reordered sums, folded weights.
    assert float((got - expected).norm() / expected.norm()) < 1e-4


def test_bf16_path_is_close_and_returns_float32(calibrated):
    model, x = calibrated
    with torch.inference_mode():
        expected = model(x)
        got = optimize_model(model, OptimizeOptions(dtype=torch.bfloat16), CPU)(x)
    assert got.dtype == torch.float32
    cosines = _cosines(got, expected)
    # bf16 keeps 8 mantissa bits: close, but measurably not exact.
    assert cosines.min() > 0.98
    assert cosines.min() < 1 - 1e-6


def test_fp16_is_refused_on_cpu(calibrated):
    with pytest.raises(ConfigError, match="CUDA"):
        optimize_model(calibrated[0], OptimizeOptions(dtype=torch.float16), CPU)


def test_options_refuse_other_dtypes():
    with pytest.raises(ConfigError, match="dtype"):
        OptimizeOptions(dtype=torch.int8)


@pytest.mark.parametrize(
    ("probes", "native"), [((False, False), False), ((True, False), True), ((False, True), True)]
)
def test_native_bf16_reads_the_cpu_probes(monkeypatch, probes, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: probes[0], raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: probes[1], raising=False)
    assert optimize.native_bf16_cpu() is native


def _clear_isa_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
        monkeypatch.delenv(name, raising=False)


def test_describe_names_every_choice(monkeypatch):
    _clear_isa_limits(monkeypatch)
    options = OptimizeOptions(dtype=torch.bfloat16, fold_bn=True, compile=True, batch_buckets=(1, 4))
    text = options.describe()
    assert text == "bfloat16, channels_last, BN folded, compiled (default, freezing), batches padded to 1/4"
    assert OptimizeOptions(channels_last=False).describe() == "float32, NCHW"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert "compiled (default, no freezing)" in options.describe()


@pytest.mark.parametrize(
    ("max_batch", "expected"),
    [(1, (1,)), (2, (1, 2)), (64, (1, 2, 4, 8, 16, 32, 64)), (48, (1, 2, 4, 8, 16, 32, 48))],
)
def test_batch_buckets(max_batch, expected):
    assert batch_buckets(max_batch) == expected


def test_pad_to_bucket_pads_with_zeros_and_returns_only_the_real_rows():
    seen: list[torch.Tensor] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x.flatten(1).sum(1, keepdim=True) + torch.arange(x.shape[0]).unsqueeze(1)

    padded = pad_to_bucket(forward, (2, 4))
    x = torch.arange(1.0, 4.0).view(3, 1, 1, 1)
    assert padded(x).tolist() == [[1.0], [3.0], [5.0]]
    assert seen[-1].shape[0] == 4
    assert seen[-1][3].abs().sum() == 0
    assert padded(x[:2]).shape == (2, 1)  # a bucket size: no padding
    assert seen[-1].shape[0] == 2
    assert padded(torch.ones(5, 1, 1, 1)).shape == (5, 1)  # beyond the buckets: as is
    assert seen[-1].shape[0] == 5


def test_bucketed_model_matches_unpadded(calibrated):
    model, x = calibrated
    forward = optimize_model(model, OptimizeOptions(batch_buckets=(8,)), CPU)
    with torch.inference_mode():
        expected = model(x[:3])
        got = forward(x[:3])
    assert got.shape == expected.shape
    assert float((got - expected).norm() / expected.norm()) < 1e-4


def test_options_refuse_unordered_buckets():
    with pytest.raises(ConfigError, match="batch_buckets"):
        OptimizeOptions(batch_buckets=(4, 2))


@pytest.mark.parametrize("limit", [None, "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"])
def test_freezing_is_off_under_an_isa_limit(monkeypatch, limit):
    _clear_isa_limits(monkeypatch)
    if limit is not None:
        monkeypatch.setenv(limit, "AVX2")
    seen: dict[str, object] = {}
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: seen.update(kwargs) or model)
    compile_model(torch.nn.Identity())
    assert seen["options"] == {"freezing": limit is None}


@pytest.mark.slow
def test_compiled_path_matches_eager(calibrated):
    model, x = calibrated
    forward = optimize_model(model, OptimizeOptions(compile=True), CPU)
    with torch.inference_mode():
        expected = model(x)
        got = forward(x)
        again = forward(x[:3])  # another batch size: compiles again, same numbers
    assert _cosines(got, expected).min() > 0.99999
    assert _cosines(again, expected[:3]).min() > 0.99999
