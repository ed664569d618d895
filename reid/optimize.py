"""Speed transformations of an inference model: conv-BN folding, memory format, autocast, ``torch.compile``.

Each transformation is a small function; :func:`optimize_model` composes them from one
:class:`OptimizeOptions` value and returns a ``Forward`` (float input → float32 features), which is what the
engine and the benchmark call. The caller's model is never modified.

What pays off where (measured by ``reid bench``, see ``reid/bench.py``):

* channels_last: oneDNN (CPU) and cuDNN (GPU) convolutions run NHWC natively; NCHW costs reorders.
* BatchNorm folding: removes one memory-bound pass per conv in eager mode (compile+freezing does it too).
* bf16 autocast: the big win on GPUs and on CPUs with native bf16 (AVX512-BF16 / AMX); on AVX2-only CPUs
  oneDNN emulates bf16 and it is *slower* than fp32, hence :func:`native_bf16_cpu`.
* compile with freezing: weights become constants, so Inductor folds BN, pre-packs conv weights for
  oneDNN and fuses the element-wise tails (SE scale, residual add, ReLU).

Not here: int8 static quantization (torchao PT2E + X86InductorQuantizer). It runs, but even on a
BN-calibrated model its embeddings drift far from fp32 (cosine well below 0.99), for at most ~2× on
AVX2 CPUs without VNNI.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse as fx_fold_conv_bn

from reid.cudagraphs import Forward as Forward  # re-exported: the type of every inference path
from reid.cudagraphs import GraphedForward
from reid.errors import ConfigError

logger = logging.getLogger(__name__)


LOW_PRECISION = (torch.bfloat16, torch.float16)


@dataclass(frozen=True, kw_only=True)
class OptimizeOptions:
    """One inference path. ``dtype`` is the autocast dtype (``float32`` = no autocast); norms, pooling and
    the returned features stay float32. ``compile_mode`` is ``torch.compile``'s ``mode`` (``None`` = default).
    ``cuda_graphs``: replay a captured CUDA graph per batch shape (:mod:`reid.cudagraphs`).
    ``batch_buckets``: pad each batch to the smallest of these sizes that holds it, so a compiled or graphed
    model sees a handful of shapes (one compilation or capture each) whatever sizes a dynamic batcher
    produces.
    """

    dtype: torch.dtype = torch.float32
    channels_last: bool = True
    fold_bn: bool = False
    compile: bool = False
    compile_mode: str | None = None
    cuda_graphs: bool = False
    batch_buckets: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.dtype not in (torch.float32, *LOW_PRECISION):
            raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {self.dtype}")
        buckets = self.batch_buckets
        if buckets != tuple(sorted(set(buckets))) or (buckets and buckets[0] < 1):
            raise ConfigError(f"batch_buckets must be increasing positive sizes, got {self.batch_buckets}")

    def describe(self) -> str:
        parts = [str(self.dtype).removeprefix("torch.")]
        parts.append("channels_last" if self.channels_last else "NCHW")
        if self.fold_bn:
            parts.append("BN folded")
        if self.compile:
            freezing = "no freezing" if isa_limits() else "freezing"
            parts.append(f"compiled ({self.compile_mode or 'default'}, {freezing})")
        if self.cuda_graphs:
            parts.append("CUDA graphs")
        if self.batch_buckets:
            parts.append(f"batches padded to {'/'.join(map(str, self.batch_buckets))}")
        return ", ".join(parts)


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX). ``get_cpu_capability()`` stops at
    "AVX512", so ask the finer probes ``torch.cpu`` exposes; without them, assume no."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) in which every ``Conv2d → BatchNorm2d`` pair whose conv output
    feeds only that BN is one conv with rescaled weights and a bias. Exact up to float rounding.

    The copy is a ``torch.fx.GraphModule``: the model must be symbolically traceable (ours are). BNs that
    do not directly follow a conv (pre-activation units, the BN half of IBN-a, the BNNeck) stay as they are.
    """
    if model.training:
        raise ConfigError("fold_batchnorm needs a model in eval mode (it bakes in the running statistics)")
    folded: nn.Module = fx_fold_conv_bn(model, inplace=False)
    return folded


# Set to run oneDNN/MKL below the CPU's instruction set (make test-portable does): freezing's pre-packed
# weights then corrupt memory (NaN embeddings, or a crash in malloc) with torch 2.14.
_ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def isa_limits() -> list[str]:
    """The ISA-limiting variables set in the environment (``_ISA_LIMITS``)."""
    return [name for name in _ISA_LIMITS if os.environ.get(name)]


def compile_model(model: nn.Module, *, mode: str | None = None) -> Forward:
    """``torch.compile`` with Inductor freezing (parameters become constants; takes effect under
    ``torch.no_grad``/``inference_mode``). Static shapes: each new batch size compiles once more.
    Without freezing where an ISA limit is set (see ``_ISA_LIMITS``)."""
    limits = isa_limits()
    if limits:
        logger.warning("%s set: compiling without freezing (its packed weights break under it)", limits)
    compiled: Forward = torch.compile(model, mode=mode, dynamic=False, options={"freezing": not limits})
    return compiled


def with_autocast(forward: Forward, device_type: str, dtype: torch.dtype, *, cache: bool = True) -> Forward:
    """Run ``forward`` under autocast to ``dtype`` (no autocast for float32); always return float32.
    ``cache=False`` for a forward captured in a CUDA graph: autocast frees its cached weight casts as it
    exits, and the graph would go on reading the freed memory."""

    def run(x: torch.Tensor) -> torch.Tensor:
        context: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext()
            if dtype == torch.float32
            else torch.autocast(device_type, dtype=dtype, cache_enabled=cache)
        )
        with context:
            return forward(x).float()

    return run


def with_memory_format(forward: Forward, memory_format: torch.memory_format) -> Forward:
    """Feed ``forward`` its input in ``memory_format`` (free when the input already is)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        return forward(x.contiguous(memory_format=memory_format))

    return run


def batch_buckets(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two below ``max_batch_size``, then ``max_batch_size``: at most half of a padded batch
    is padding, and log2(max) + 1 shapes get compiled."""
    if max_batch_size < 1:
        raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size}")
    powers = tuple(2**k for k in range(max_batch_size.bit_length()) if 2**k < max_batch_size)
    return (*powers, max_batch_size)


def pad_to_bucket(forward: Forward, buckets: Sequence[int]) -> Forward:
    """Run ``forward`` on the batch zero-padded to the smallest bucket that holds it and drop the padded
    rows (exact: inference rows are independent). Batches larger than every bucket run as they are."""

    def run(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        size = next((b for b in buckets if b >= n), n)
        if size == n:
            return forward(x)
        return forward(torch.cat((x, x.new_zeros((size - n, *x.shape[1:])))))[:n]

    return run


def optimize_model(model: nn.Module, options: OptimizeOptions, device: torch.device) -> Forward:
    """The inference path ``options`` describes, for ``model`` on ``device``: a function from a float
    (N, 3, H, W) batch on ``device`` to float32 features. ``model`` itself is left untouched.

    fp16 is refused on CPU (no fast kernels); bf16 on a CPU without native bf16 works but is slow.
    """
    if options.dtype == torch.float16 and device.type != "cuda":
        raise ConfigError("fp16 inference is only supported on CUDA; use bf16 or fp32 on CPU")
    if options.cuda_graphs and device.type != "cuda":
        raise ConfigError(f"CUDA graphs need a CUDA device, not {device}")
    if options.dtype == torch.bfloat16 and device.type == "cpu" and not native_bf16_cpu():
        logger.warning("this CPU has no native bf16 (AVX512-BF16/AMX): bf16 will be slower than fp32")
    prepared = copy.deepcopy(model).eval().to(device)
    if options.fold_bn:
        prepared = fold_batchnorm(prepared)
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    prepared = prepared.to(memory_format=memory_format)
    forward: Forward = compile_model(prepared, mode=options.compile_mode) if options.compile else prepared
    autocast = with_autocast(forward, device.type, options.dtype, cache=not options.cuda_graphs)
    forward = with_memory_format(autocast, memory_format)
    if options.cuda_graphs:
        forward = GraphedForward(forward)
    return pad_to_bucket(forward, options.batch_buckets) if options.batch_buckets else forward
