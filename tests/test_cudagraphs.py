"""CUDA graphs: the bookkeeping of :class:`GraphedForward` (one capture per shape, static buffers, copies out)
checked on the CPU with a capture that recomputes; the real capture only where CUDA is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reid.cudagraphs import Forward, GraphedForward, Replay
from reid.engine import EngineOptions, load_extractor
from reid.errors import ConfigError
from reid.export.verify import relative_error
from reid.optimize import OptimizeOptions, optimize_model
from reid.runtimes.artifact import THRESHOLDS
from tests.helpers import calibrated_extractor, smooth_images


class RecomputingCapture:
    """Stands in for a CUDA graph: "replaying" recomputes from the static input into the static output,
    so a stale input buffer or a shared output would show."""

    def __init__(self) -> None:
        self.captures: list[tuple[int, ...]] = []

    def __call__(self, forward: Forward, static_input: torch.Tensor) -> tuple[Replay, torch.Tensor]:
        self.captures.append(tuple(static_input.shape))
        static_output = forward(static_input)

        def replay() -> None:
            static_output.copy_(forward(static_input))

        return replay, static_output


def model(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).cumsum(1)[:, -4:] * 2


def test_one_capture_per_shape_whatever_the_layout():
    capture = RecomputingCapture()
    graphed = GraphedForward(model, capture)
    a, b = torch.rand(4, 3, 8, 4), torch.rand(2, 3, 8, 4)
    for x in (a, b, a.clone(), b + 1, a.contiguous(memory_format=torch.channels_last)):
        torch.testing.assert_close(graphed(x), model(x))
    assert capture.captures == [(4, 3, 8, 4), (2, 3, 8, 4)]
    assert graphed.captured == 2


def test_results_are_copies_that_outlive_the_next_replay():
    graphed = GraphedForward(model, RecomputingCapture())
    first_input, second_input = torch.rand(4, 3, 8, 4), torch.rand(4, 3, 8, 4)
    first = graphed(first_input)
    second = graphed(second_input)
    torch.testing.assert_close(first, model(first_input))
    torch.testing.assert_close(second, model(second_input))
    second.zero_()
    torch.testing.assert_close(graphed(second_input), model(second_input))


def test_cuda_graphs_need_a_gpu():
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA device"):
        optimize_model(torch.nn.Identity(), OptimizeOptions(cuda_graphs=True), torch.device("cpu"))
    with pytest.raises(ConfigError, match="CUDA graphs"):
        calibrated_extractor(options=EngineOptions(device="cpu", cuda_graphs=True))
    assert "CUDA graphs" in OptimizeOptions(cuda_graphs=True).describe()


def test_runtimes_without_graphs_refuse_them(onnx_artifact: Path):
    with pytest.raises(ConfigError, match="the onnxruntime runtime has no CUDA graphs"):
        load_extractor(onnx_artifact, options=EngineOptions(cuda_graphs=True))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_graphed_extractor_matches_eager_at_every_batch_size(dtype):
    images = smooth_images(11, 64, 32, seed=3)
    plain = calibrated_extractor(options=EngineOptions(device="cuda", dtype=dtype, flip=True))
    graphed = calibrated_extractor(
        options=EngineOptions(device="cuda", dtype=dtype, flip=True, cuda_graphs=True, max_batch_size=8)
    )
    graphed.warmup()
    assert isinstance(graphed.runtime, type(plain.runtime))
    reference = plain.embed_batch(images)
    for size in (1, 3, 8, 11):
        got = np.concatenate([graphed.embed_batch(images[i : i + size]) for i in range(0, 11, size)])
        # Padded buckets pick other kernels (TF32 convolutions in fp32): judged against the distance
        # between people, where a stale or wrong replay would be as far off as another person.
        error, _ = relative_error(reference, got)
        assert error <= THRESHOLDS[dtype], (size, error)
    for extractor in (plain, graphed):
        extractor.close()
