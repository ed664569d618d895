"""OpenVINO writer: the model converted straight from PyTorch to an IR (``.xml`` graph + ``.bin`` weights)
with a dynamic batch axis. Weights stay fp32 in the IR: bf16 is an inference precision chosen when the
IR is compiled (see :mod:`reid.runtimes.openvino`), so one IR serves both."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from reid.errors import ConfigError
from reid.export.onnx import OUTPUT_NAME
from reid.models import ReIDModel
from reid.runtimes.base import BatchProfile, Precision
from reid.runtimes.onnx import INPUT_NAME
from reid.runtimes.openvino import import_openvino, native_precisions


def write_openvino(
    model: ReIDModel, example: torch.Tensor, profile: BatchProfile, dtype: Precision, out: Path
) -> list[Path]:
    """Write ``out`` (``.xml``) and its ``.bin``; returns the files written."""
    if dtype not in ("fp32", "bf16"):
        raise ConfigError(f"OpenVINO artifacts are fp32 or bf16, got --dtype {dtype}")
    ov = import_openvino()
    if dtype == "bf16" and "BF16" not in native_precisions():
        # Verification must run the precision it vouches for; here OpenVINO would compute in f32.
        raise ConfigError("this CPU has no native bf16 (AVX512-BF16/AMX): export bf16 on one that has")
    _, _, height, width = example.shape
    shape = ov.PartialShape([ov.Dimension(profile.min, profile.max), 3, height, width])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warnings about shape checks that are constant here
        converted = ov.convert_model(model.eval(), example_input=example, input=[shape])
    converted.inputs[0].get_tensor().set_names({INPUT_NAME})
    converted.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    ov.save_model(converted, str(out), compress_to_fp16=False)
    return [out, out.with_suffix(".bin")]
