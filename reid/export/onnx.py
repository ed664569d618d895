"""ONNX writer: ``torch.onnx.export`` (the ``torch.export`` based exporter) with a dynamic batch axis.

fp16 artifacts hold fp16 weights and compute in fp16 inside (what ONNX Runtime's CUDA and TensorRT execution
providers run fast) but keep float32 input and output, so every runtime sees the same interface. The CPU
execution provider runs them too (it computes the ops it has no fp16 kernel for in float32), which is where
``reid export`` verifies them.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from reid.errors import ConfigError
from reid.export.request import WriteRequest
from reid.models import ReIDModel
from reid.runtimes.onnx import INPUT_NAME

logger = logging.getLogger(__name__)

OUTPUT_NAME = "features"
OPSET = 18
# The exporter's graph passes log every rewrite at INFO.
_CHATTY_LOGGERS = ("onnxscript", "onnx_ir")


class HalfPrecision(nn.Module):
    """``model`` in fp16 between a float32 input and a float32 output."""

    def __init__(self, model: ReIDModel) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x.half())
        return out.float()


def write_onnx(model: ReIDModel, request: WriteRequest, out: Path) -> list[Path]:
    """Write ``out`` (a single ``.onnx`` file with its weights inside); returns the files written."""
    if request.dtype not in ("fp32", "fp16"):
        raise ConfigError(
            f"ONNX artifacts are fp32 or fp16 (got --dtype {request.dtype}): for bf16 or int8 on a CPU "
            "export to openvino, for bf16 on an NVIDIA GPU to tensorrt"
        )
    try:
        import onnx  # noqa: F401 - the exporter needs it (and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the onnx extra: pip install 'reid[onnx]'") from None
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's business
        torch.onnx.export(
            HalfPrecision(model).eval() if request.dtype == "fp16" else model.eval(),
            (request.example,),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=request.dynamic_shapes(),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    return [out]
