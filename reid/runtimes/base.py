"""The small interface every runtime implements, and the batch profile an exported artifact accepts.

A runtime turns a *normalised* float32 batch (N, 3, H, W) into float32 features (N, dim). Everything
around it — decoding, resizing, normalisation, flip TTA, chunking, L2 normalisation and the model
fingerprint — lives in :class:`reid.engine.Extractor`, once for all runtimes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import torch

from reid.errors import ConfigError
from reid.models import ReIDConfig

RuntimeName = Literal["torch", "onnxruntime", "openvino", "tensorrt"]
RUNTIMES: tuple[RuntimeName, ...] = ("torch", "onnxruntime", "openvino", "tensorrt")
Precision = Literal["fp32", "bf16", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16", "int8")
TORCH_DTYPES: dict[Precision, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "int8": torch.int8,
}


@dataclass(frozen=True)
class BatchProfile:
    """Batch sizes an artifact accepts (``min``..``max``) and the one it is tuned for (``opt``; TensorRT
    builds its kernels for it). ONNX and OpenVINO graphs take any size in the range."""

    min: int = 1
    opt: int = 16
    max: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ConfigError(
                f"batch profile needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}"
            )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> BatchProfile:
        return cls(**{k: int(record[k]) for k in ("min", "opt", "max")})


class Runtime(ABC):
    """One model on one device. ``device`` is where the engine puts the normalised input; ``dtype`` is the
    precision the model computes in; ``channels_last`` the memory format it wants its input in."""

    name: ClassVar[RuntimeName]
    config: ReIDConfig
    device: torch.device
    dtype: torch.dtype
    channels_last: bool = False
    # Batch sizes one forward may take; the engine chunks larger batches and pads smaller ones.
    profile: BatchProfile | None = None
    # Sizes the engine warms up (padding buckets of a compiled torch model); empty: the caller's sizes.
    warmup_sizes: tuple[int, ...] = ()

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 features (N, dim) of a normalised float32 batch on :attr:`device`."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What runs, for ``/info`` and ``reid eval --json``: runtime, version, precision, options."""

    def close(self) -> None:  # noqa: B027 - most runtimes hold nothing that needs releasing
        """Release what the runtime holds (sessions, request queues)."""
