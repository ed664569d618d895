#!/usr/bin/env bash
# Gathers into .whl/ the wheels that benchmarks/gpu_check.sh needs beyond a bare CUDA image with PyTorch
# (torch, numpy, pillow, httpx, pytest... already there), for a GPU machine that reaches no package
# registry. The versions are this checkout's virtualenv's, so the GPU run uses what the tests ran with.
#
#   benchmarks/device_wheels.sh                  # Python 3.12 wheels (PYVER=3.11 for another)
#   # then, on the GPU machine, with .whl/ carried beside the checkout:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#   BUDGET=540 bash benchmarks/gpu_check.sh
#
# Not gathered: torch-tensorrt, onnxruntime-gpu and faiss-gpu (each hundreds of MB to GBs, and tied to the
# image's CUDA); gpu_check.sh skips their steps where they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
PYVER="${PYVER:-3.12}"
DEST="${DEST:-.whl}"
# The web stack, FAISS on the CPU (the gallery's default) and TorchCodec (nvJPEG), pinned as installed here.
mapfile -t PINS < <("$PYTHON" - <<'PY'
from importlib.metadata import version

for name in (
    "fastapi", "starlette", "pydantic", "pydantic-core", "pydantic-settings", "python-dotenv",
    "python-multipart", "uvicorn", "typing-inspection", "annotated-types", "opentelemetry-api",
    "faiss-cpu", "torchcodec",
):
    print(f"{name}=={version(name)}")
PY
)
PLATFORMS=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    PLATFORMS+=(--platform "${tag}_x86_64")
done
mkdir -p "$DEST"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "$PYVER" "${PLATFORMS[@]}" --platform any --dest "$DEST" "${PINS[@]}"
du -sh "$DEST"
