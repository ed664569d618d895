"""The eager PyTorch runtime: a checkpoint's model with the speed tricks of :mod:`reid.optimize`
(BN folding, channels_last, autocast, ``torch.compile`` or CUDA graphs with padded batch buckets)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from reid.models import ReIDModel
from reid.optimize import OptimizeOptions, batch_buckets, optimize_model
from reid.runtimes.base import Runtime, RuntimeName


class TorchRuntime(Runtime):
    name: ClassVar[RuntimeName] = "torch"

    def __init__(
        self,
        model: ReIDModel,
        device: torch.device,
        *,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = True,
        fold_bn: bool = True,
        compile: bool = False,
        cuda_graphs: bool = False,
        max_batch_size: int = 64,
    ) -> None:
        self.config = model.cfg
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        # With compile or graphs, every batch is padded to one of a few sizes so each shape compiles (is
        # captured) once, at warm-up.
        self.warmup_sizes = batch_buckets(max_batch_size) if compile or cuda_graphs else ()
        self.options = OptimizeOptions(
            dtype=dtype,
            channels_last=channels_last,
            fold_bn=fold_bn,
            compile=compile,
            cuda_graphs=cuda_graphs,
            batch_buckets=self.warmup_sizes,
        )
        self._forward = optimize_model(model, self.options, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "version": torch.__version__,
            "channels_last": self.channels_last,
            "compile": self.options.compile,
            "fold_bn": self.options.fold_bn,
            "cuda_graphs": self.options.cuda_graphs,
        }
