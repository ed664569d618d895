"""CUDA graphs for the torch runtime: capture a model's forward once per input shape, then replay it.

Eager PyTorch launches every kernel from Python; a ResNet-50 forward is a few hundred launches, which at
small batches costs more than the GPU's work. A replayed graph launches them all at once. Graphs need
fixed shapes, so the runtime pads each batch to a bucket size first (:func:`reid.optimize.pad_to_bucket`)
and a handful of graphs serve every batch the dynamic batcher produces.

A graph reads its input from, and writes its output to, buffers of its own: :class:`GraphedForward` copies
each batch into the input buffer and returns a copy of the output, so the caller may keep results across
calls (flip TTA adds two of them). One caller at a time: the engine's lock serialises forwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# Warm-up runs before a capture (cuDNN picks its algorithms, the allocator fills its cache), as in
# PyTorch's CUDA-graphs recipe.
WARMUP_RUNS = 3

# A model's inference path: float input batch → float32 features.
Forward = Callable[[torch.Tensor], torch.Tensor]
Replay = Callable[[], None]
# (forward, static input) → (replay, static output): a capture of forward reading the static input.
Capture = Callable[[Forward, torch.Tensor], tuple[Replay, torch.Tensor]]


def capture_cuda_graph(forward: Forward, static_input: torch.Tensor) -> tuple[Replay, torch.Tensor]:
    """Warm ``forward`` up on a side stream, then capture it reading ``static_input``. Other threads may
    use the GPU meanwhile (decoding, copies): only this thread's work is captured."""
    device = static_input.device
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP_RUNS):
            forward(static_input)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # Captured on the warm-up stream, which is on the input's device (torch.cuda.graph's own default stream
    # belongs to the current device).
    with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
        static_output = forward(static_input)
    return graph.replay, static_output


@dataclass(eq=False)
class _Graph:
    static_input: torch.Tensor
    replay: Replay
    static_output: torch.Tensor


class GraphedForward:
    """``forward`` replayed from one graph per input shape and dtype. The input buffer keeps the memory
    layout of the first batch of its shape; later batches are copied into it whatever their layout (a
    padded batch may come out of ``torch.cat`` in another layout than an unpadded one)."""

    def __init__(self, forward: Forward, capture: Capture = capture_cuda_graph) -> None:
        self.forward = forward
        self._capture = capture
        self._graphs: dict[tuple[object, ...], _Graph] = {}

    @property
    def captured(self) -> int:
        return len(self._graphs)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device)
        graph = self._graphs.get(key)
        if graph is None:
            static_input = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
            static_input.copy_(x)
            replay, static_output = self._capture(self.forward, static_input)
            graph = self._graphs[key] = _Graph(static_input, replay, static_output)
        else:
            graph.static_input.copy_(x)
        graph.replay()
        return graph.static_output.clone()
