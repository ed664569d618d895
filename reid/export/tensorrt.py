"""TensorRT writer: ``torch.export`` with a dynamic batch axis → torch-tensorrt dynamo compile (engines
built for the profile's min/opt/max batch) → a ``.ep`` exported program with the engines inside.

fp16/bf16 use torch-tensorrt's rule-based autocast (``enable_autocast`` with
``autocast_low_precision_type``: since 2.13 networks are always strongly typed and ``enabled_precisions``
is gone; an unknown keyword is silently ignored, which would build fp32), so norms and reductions it judges
sensitive stay fp32; the InstanceNorm half of IBN is such a layer. Engines keep immutable weights, the
fastest kind: torch-tensorrt caches only refittable engines, so every export builds.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reid.errors import ConfigError
from reid.export.request import WriteRequest
from reid.models import ReIDModel
from reid.runtimes.base import TORCH_DTYPES
from reid.runtimes.tensorrt import import_torch_tensorrt


def write_tensorrt(model: ReIDModel, request: WriteRequest, out: Path) -> list[Path]:
    """Build the engines on the current GPU and write ``out`` (``.ep``); returns the files written."""
    dtype, profile = request.dtype, request.profile
    if dtype not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"TensorRT artifacts are fp32, fp16 or bf16 here, got --dtype {dtype}")
    torch_tensorrt = import_torch_tensorrt()
    if dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bf16: export fp16")
    device = torch.device("cuda")
    model = model.eval().to(device)
    example = request.example.to(device)
    _, channels, height, width = example.shape
    with torch.inference_mode():
        program = torch.export.export(
            model, (example,), dynamic_shapes=request.dynamic_shapes(), strict=False
        )
    inputs = [
        torch_tensorrt.Input(
            min_shape=(profile.min, channels, height, width),
            opt_shape=(profile.opt, channels, height, width),
            max_shape=(profile.max, channels, height, width),
            dtype=torch.float32,
        )
    ]
    low_precision = dtype != "fp32"
    compiled = torch_tensorrt.dynamo.compile(
        program,
        arg_inputs=inputs,
        min_block_size=1,
        enable_autocast=low_precision,
        autocast_low_precision_type=TORCH_DTYPES[dtype] if low_precision else None,
    )
    torch_tensorrt.save(compiled, str(out), output_format="exported_program", arg_inputs=inputs)
    return [out]
