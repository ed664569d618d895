"""OpenVINO writer: the model converted straight from PyTorch to an IR (``.xml`` graph + ``.bin`` weights)
with a dynamic batch axis.

fp32 and bf16 IRs hold the same fp32 weights: bf16 is an inference precision chosen when the IR is
compiled (see :mod:`reid.runtimes.openvino`). int8 runs NNCF post-training quantisation on calibration
images (``reid export --calibration DIR``): without representative images int8 re-ID embeddings are
useless, so there is no int8 without them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from reid.errors import ConfigError
from reid.export.onnx import OUTPUT_NAME
from reid.export.request import WriteRequest
from reid.models import ReIDModel
from reid.runtimes.onnx import INPUT_NAME
from reid.runtimes.openvino import import_openvino, native_precisions


def _quantize(ov_model: Any, request: WriteRequest) -> Any:
    if request.calibration is None:
        raise ConfigError("int8 needs calibration images: reid export ... --dtype int8 --calibration DIR")
    try:
        import nncf
    except ImportError:
        raise ConfigError("int8 export needs NNCF: pip install 'reid[openvino]'") from None
    images = [image[None].numpy() for image in request.calibration]
    return nncf.quantize(ov_model, nncf.Dataset(images), subset_size=len(images))


def write_openvino(model: ReIDModel, request: WriteRequest, out: Path) -> list[Path]:
    """Write ``out`` (``.xml``) and its ``.bin``; returns the files written."""
    if request.dtype not in ("fp32", "bf16", "int8"):
        raise ConfigError(f"OpenVINO artifacts are fp32, bf16 or int8, got --dtype {request.dtype}")
    ov = import_openvino()
    if request.dtype == "bf16" and "BF16" not in native_precisions():
        # Verification must run the precision it vouches for; here OpenVINO would compute in f32.
        raise ConfigError("this CPU has no native bf16 (AVX512-BF16/AMX): export bf16 on one that has")
    _, channels, height, width = request.example.shape
    profile = request.profile
    shape = ov.PartialShape([ov.Dimension(profile.min, profile.max), channels, height, width])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warnings about shape checks that are constant here
        converted = ov.convert_model(model.eval(), example_input=request.example, input=[shape])
    converted.inputs[0].get_tensor().set_names({INPUT_NAME})
    converted.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    if request.dtype == "int8":
        converted = _quantize(converted, request)
    ov.save_model(converted, str(out), compress_to_fp16=False)
    return [out, out.with_suffix(".bin")]
