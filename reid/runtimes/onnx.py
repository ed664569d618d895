"""ONNX Runtime: a ``.onnx`` artifact on the CPU execution provider, or on the CUDA execution provider
where ``onnxruntime-gpu`` is installed and the device is a GPU.

Not its TensorRT provider: without shape profiles it builds engines again for each new batch size (minutes
for SE-IBN-R50), and it needs the TensorRT its build was linked against. TensorRT is the ``tensorrt``
runtime's job (``reid export --format tensorrt``)."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from reid.errors import ConfigError
from reid.runtimes.artifact import ArtifactManifest, ArtifactRuntime
from reid.runtimes.base import TORCH_DTYPES, RuntimeName

logger = logging.getLogger(__name__)

INPUT_NAME = "images"
CPU_PROVIDER = "CPUExecutionProvider"
GPU_PROVIDER = "CUDAExecutionProvider"


def onnxruntime_version() -> str:
    # onnxruntime and onnxruntime-gpu install the same module under two distribution names.
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _providers(device: torch.device | None, available: list[str]) -> list[str]:
    gpu = GPU_PROVIDER in available
    if device is None:  # the GPU where this onnxruntime can use one, else the CPU
        device = torch.device("cuda" if gpu and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        return [CPU_PROVIDER]
    if not gpu:
        raise ConfigError(
            f"onnxruntime has no CUDA execution provider here (available: {', '.join(available)}); "
            "install onnxruntime-gpu or use --device cpu"
        )
    return [GPU_PROVIDER, CPU_PROVIDER]


class OnnxRuntime(ArtifactRuntime):
    name: ClassVar[RuntimeName] = "onnxruntime"

    def __init__(self, path: Path, manifest: ArtifactManifest, device: torch.device | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(
                "the onnxruntime runtime needs the onnx extra: pip install 'reid[onnx]'"
            ) from None
        self.config = manifest.model
        self.dtype = TORCH_DTYPES[manifest.dtype]
        self.profile = manifest.batch
        # Input goes through host memory either way: the session copies it to the GPU itself.
        self.device = torch.device("cpu")
        self.path = path
        self.providers = _providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=self.providers)

    @staticmethod
    def library_version() -> str:
        return onnxruntime_version()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (out,) = self._session.run(None, {INPUT_NAME: np.ascontiguousarray(x.numpy(), dtype=np.float32)})
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "version": self.library_version(),
            "artifact": str(self.path),
            "providers": self._session.get_providers(),
        }
