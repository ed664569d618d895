"""OpenVINO on the CPU: an IR (``model.xml`` + ``model.bin``) compiled with the THROUGHPUT hint.

With that hint OpenVINO makes about one stream per core, and only requests kept in flight use them: one
synchronous request at a time leaves all but one core idle. So a batch is split over the compiled
model's optimal number of requests and run through an ``AsyncInferQueue``. bf16 artifacts run with the
bf16 inference precision hint where the CPU computes bf16 natively (AVX512-BF16, AMX); fp32 artifacts
are pinned to f32, because OpenVINO would otherwise pick bf16 by itself on such CPUs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from reid.errors import ConfigError
from reid.runtimes.artifact import ArtifactManifest, ArtifactRuntime
from reid.runtimes.base import TORCH_DTYPES, Precision, RuntimeName

logger = logging.getLogger(__name__)

DEVICE = "CPU"
# OpenVINO's names for the precisions an IR may be asked to compute in.
_PRECISION_HINTS: dict[Precision, str] = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


def import_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise ConfigError(
            "the openvino runtime needs the openvino extra: pip install 'reid[openvino]'"
        ) from None
    return openvino


# oneDNN's instruction-set levels, lowest first; ONEDNN_MAX_CPU_ISA caps OpenVINO's CPU plugin too.
_ISA_LEVELS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
)
_NEEDS_ISA = {"BF16": "AVX512_CORE_BF16", "FP16": "AVX512_CORE_FP16"}


def _isa_allows(needed: str) -> bool:
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap not in _ISA_LEVELS:  # unset, ALL, DEFAULT or unknown: no cap
        return True
    return _ISA_LEVELS.index(cap) >= _ISA_LEVELS.index(needed)


def native_precisions() -> set[str]:
    """What the CPU computes natively according to OpenVINO (``BF16``, ``FP16``, ``INT8``, ``FP32``), less
    what ``ONEDNN_MAX_CPU_ISA`` forbids: OpenVINO reports the CPU's features, but with the instruction set
    capped below them it has no bf16 kernels and fails to compile a bf16 model."""
    ov = import_openvino()
    capabilities = set(ov.Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))
    return {c for c in capabilities if c not in _NEEDS_ISA or _isa_allows(_NEEDS_ISA[c])}


def compile_config(dtype: Precision) -> dict[str, str]:
    """THROUGHPUT hint, and the artifact's precision where the CPU has it natively (f32 otherwise)."""
    hint = _PRECISION_HINTS[dtype]
    if dtype in ("bf16", "fp16") and dtype.upper() not in native_precisions():
        logger.warning("this CPU has no native %s: OpenVINO computes in f32 instead", dtype)
        hint = "f32"
    return {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": hint}


class OpenVINORuntime(ArtifactRuntime):
    name: ClassVar[RuntimeName] = "openvino"

    def __init__(self, path: Path, manifest: ArtifactManifest, device: torch.device | None) -> None:
        device = device or torch.device("cpu")
        if device.type != "cpu":
            raise ConfigError(f"the openvino runtime runs on the CPU, not on {device}")
        ov = import_openvino()
        self.config = manifest.model
        self.dtype = TORCH_DTYPES[manifest.dtype]
        self.profile = manifest.batch
        self.device = device
        self.path = path
        self._compiled = ov.Core().compile_model(str(path), DEVICE, compile_config(manifest.dtype))
        self.requests = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._queue = ov.AsyncInferQueue(self._compiled, self.requests)
        self._queue.set_callback(self._collect)
        self._results: dict[int, np.ndarray] = {}

    @staticmethod
    def library_version() -> str:
        return str(import_openvino().get_version())

    def _collect(self, request: Any, part: int) -> None:
        # The request's output buffer is reused by its next inference: copy it out.
        self._results[part] = np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Split ``x`` into up to :attr:`requests` parts kept in flight together (one part: one request),
        none smaller than the profile's smallest batch."""
        array = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        smallest = self.profile.min if self.profile else 1
        parts = np.array_split(array, max(1, min(self.requests, len(array) // smallest)))
        self._results.clear()
        for index, part in enumerate(parts):
            self._queue.start_async({0: part}, userdata=index)
        self._queue.wait_all()
        return torch.from_numpy(np.concatenate([self._results[i] for i in range(len(parts))]))

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "version": self.library_version(),
            "artifact": str(self.path),
            "inference_precision": self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
            "requests_in_flight": self.requests,
        }
