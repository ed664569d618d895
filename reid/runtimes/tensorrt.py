"""TensorRT on an NVIDIA GPU through torch-tensorrt's dynamo path: a ``.ep`` artifact is a
``torch.export`` program whose TensorRT engines (built for the manifest's batch profile) are embedded.

The engine takes the normalised float32 batch on the GPU and returns float32 features; in fp16/bf16
engines torch-tensorrt's autocast decides per layer what runs in low precision, and ``reid export``
has checked the result against eager fp32 before writing it.

With CUDA graphs (``--cuda-graphs``) batches are padded to a few bucket sizes within the artifact's profile
and each bucket's engine execution is captured once (at warm-up) by :class:`reid.cudagraphs.GraphedForward`,
as torch-tensorrt's own whole-graph mode captures a module. Not torch-tensorrt's per-engine mode: it keeps
one graph per engine and records it again whenever the batch size changes, and it is a process-wide switch.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, ClassVar

import torch

from reid.cudagraphs import GraphedForward
from reid.errors import ConfigError
from reid.optimize import Forward, batch_buckets, pad_to_bucket
from reid.runtimes.artifact import ArtifactManifest, ArtifactRuntime
from reid.runtimes.base import TORCH_DTYPES, BatchProfile, RuntimeName


def import_torch_tensorrt() -> Any:
    if not torch.cuda.is_available():
        raise ConfigError("the tensorrt runtime needs an NVIDIA GPU (CUDA is not available)")
    try:
        import torch_tensorrt
    except ImportError:
        raise ConfigError(
            "the tensorrt runtime needs the tensorrt extra: pip install 'reid[tensorrt]'"
        ) from None
    return torch_tensorrt


def tensorrt_version() -> str:
    versions = []
    for dist in ("torch-tensorrt", "tensorrt"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(versions) or "unknown"


class TensorRTRuntime(ArtifactRuntime):
    name: ClassVar[RuntimeName] = "tensorrt"
    profile: BatchProfile  # an engine is built for a batch range

    def __init__(self, path: Path, manifest: ArtifactManifest, device: torch.device | None) -> None:
        if device is not None and device.type != "cuda":
            raise ConfigError(f"the tensorrt runtime runs on an NVIDIA GPU, not on {device}")
        torch_tensorrt = import_torch_tensorrt()
        device = device or torch.device("cuda", torch.cuda.current_device())
        self.config = manifest.model
        self.dtype = TORCH_DTYPES[manifest.dtype]
        self.profile = manifest.batch
        self.device = device
        self.path = path
        with torch.cuda.device(device):
            self._module = torch_tensorrt.load(str(path)).module()
        self._cuda_graphs = False
        self._forward: Forward = self._run

    @staticmethod
    def library_version() -> str:
        return tensorrt_version()

    def use_cuda_graphs(self, max_batch_size: int) -> None:
        profile = self.profile
        sizes = batch_buckets(min(max_batch_size, profile.max))
        self.warmup_sizes = tuple(sorted({max(profile.min, size) for size in sizes}))
        self._cuda_graphs = True
        self._forward = pad_to_bucket(GraphedForward(self._run), self.warmup_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.cuda.device(self.device):
            out: torch.Tensor = self._module(x.contiguous())
        return out.float()

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "version": self.library_version(),
            "artifact": str(self.path),
            "cuda_graphs": self._cuda_graphs,
        }
