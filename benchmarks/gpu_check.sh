#!/usr/bin/env bash
# Every GPU figure of the README in one run (about 8 minutes on one recent NVIDIA GPU):
#   1. model only, per runtime and precision, at batch 1/32/256 (reid bench: torch fp16/bf16, TensorRT, each
#      also replayed from CUDA graphs), with CPU decoding beside it;
#   2. HTTP /embed end to end vs model only, 64 clients, on a TensorRT fp16 artifact (benchmarks/load_test.py),
#      as configured by default and with CUDA graphs + GPU JPEG decoding;
#   3. JPEG decode + resize, CPU threads vs the GPU (nvJPEG, REID_GPU_DECODE's path);
#   4. FAISS exact search on the GPU over 1M x 2048 vectors;
#   5. reid train throughput: SE-IBN-R50 at 256x128, bf16 autocast (the BoT recipe).
# Each step is bounded in time; the script goes on after a failed step and exits non-zero if any failed.
# Steps whose library is missing are skipped and listed (TensorRT without torch-tensorrt: the HTTP steps
# then serve the checkpoint on torch bf16; FAISS on the GPU without a GPU build of faiss).
#
#   benchmarks/gpu_check.sh                        # random weights (throughput does not depend on them)
#   WEIGHTS=weights/model.safetensors benchmarks/gpu_check.sh   # a trained checkpoint: errors mean something
#   BUDGET=540 benchmarks/gpu_check.sh             # every step ends within 540 s of the start
#
# Needs the GPU image or `pip install '.[gpu,tensorrt,dev]'`. PYTHON picks the interpreter (default python3).
# On a machine without a registry, benchmarks/device_wheels.sh gathers the small packages it lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/reid-gpu-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# What outlives the run (the bench's JSON): RESULTS, else $OUT where a device runner sets it, else here.
RESULTS="${RESULTS:-${OUT:-.}}"
mkdir -p "$RESULTS"
FAILED=()
SKIPPED=()
BUDGET="${BUDGET:-0}" # seconds for the whole run; 0: each step's own limit only

step() {
    # step NAME SECONDS COMMAND...: run COMMAND under a time limit, record a failure and go on.
    local name="$1" limit="$2"
    shift 2
    echo
    echo "=== ${name} ==="
    if ((BUDGET > 0)); then
        local left=$((BUDGET - SECONDS - 10))
        if ((left < 30)); then
            echo "--- ${name}: skipped (out of time)"
            SKIPPED+=("${name} (out of time)")
            return
        fi
        ((limit > left)) && limit=$left
    fi
    local started=$SECONDS
    if timeout --signal=INT --kill-after=20 "$limit" "$@"; then
        echo "--- ${name}: ok ($((SECONDS - started)) s)"
    else
        echo "--- ${name}: FAILED (exit $?, $((SECONDS - started)) s)"
        FAILED+=("$name")
    fi
}

echo "=== host ==="
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || FAILED+=("nvidia-smi")
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available())'
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    echo "error: CUDA is not available to torch" >&2
    exit 1
}

has() { "$PYTHON" -c "$1" >/dev/null 2>&1; }
if has 'import torch_tensorrt'; then
    TRT=1
    RUNTIMES=torch,tensorrt
    VARIANTS=fp16,bf16,bf16+graphs,tensorrt-fp16,tensorrt-fp16+graphs
else
    TRT=0
    RUNTIMES=torch
    VARIANTS=fp16,bf16,bf16+graphs
    SKIPPED+=("TensorRT (no torch_tensorrt)")
fi

if [[ -n "${WEIGHTS:-}" ]]; then
    CHECKPOINT="$WEIGHTS"
    BENCH_WEIGHTS=(--weights "$WEIGHTS")
    FORCE=()
else
    CHECKPOINT="$WORK/weights/random.safetensors"
    BENCH_WEIGHTS=()
    # Random networks exaggerate low-precision error: export anyway, the manifest records it.
    FORCE=(--force)
    step "random checkpoint" 120 "$PYTHON" benchmarks/gpu_probes.py checkpoint "$CHECKPOINT"
fi

step "model only: ${RUNTIMES} at batch 1/32/256" 300 \
    "$PYTHON" -m reid bench --device cuda "${BENCH_WEIGHTS[@]}" --batch-sizes 1,32,256 \
    --runtime "$RUNTIMES" --variants "$VARIANTS" --min-time 1 --rounds 2 \
    --decode-threads "1,$(nproc)" --json "$RESULTS/gpu_check_bench.json"

SERVE=()
LABEL=""
if ((TRT)); then
    step "export TensorRT fp16 (batch 1..64)" 240 \
        "$PYTHON" -m reid export "$CHECKPOINT" --format tensorrt --dtype fp16 \
        --min-batch 1 --opt-batch 64 --max-batch 64 --out "$WORK/trt" "${FORCE[@]}"
    ARTIFACT="$(find "$WORK/trt" -name '*.ep' -print -quit 2>/dev/null || true)"
    if [[ -n "$ARTIFACT" ]]; then
        SERVE=(--weights "$ARTIFACT")
        LABEL="TensorRT fp16"
    fi
elif [[ -f "$CHECKPOINT" ]]; then
    SERVE=(--weights "$CHECKPOINT" --dtype bf16)
    LABEL="torch bf16"
fi
if [[ -n "$LABEL" ]]; then
    step "HTTP /embed vs model only, 64 clients, ${LABEL}" 150 \
        "$PYTHON" benchmarks/load_test.py "${SERVE[@]}" --device cuda --max-batch-size 64 \
        --concurrency 64 --duration 10
    step "HTTP /embed vs model only, 64 clients, ${LABEL}, CUDA graphs, GPU decoding" 150 \
        "$PYTHON" benchmarks/load_test.py "${SERVE[@]}" --device cuda --max-batch-size 64 \
        --concurrency 64 --duration 10 --cuda-graphs --gpu-decode
else
    echo "--- nothing to serve: HTTP steps skipped"
    FAILED+=("HTTP /embed")
fi

step "decode: CPU vs GPU" 120 "$PYTHON" benchmarks/gpu_probes.py decode
if has 'import faiss, sys; sys.exit(faiss.get_num_gpus() == 0)'; then
    step "FAISS GPU exact search 1M x 2048" 180 "$PYTHON" benchmarks/gpu_probes.py faiss
else
    SKIPPED+=("FAISS on the GPU (no GPU build of faiss)")
fi
step "training: SE-IBN-R50 256x128 bf16" 180 "$PYTHON" benchmarks/gpu_probes.py train

echo
if ((${#SKIPPED[@]})); then
    printf 'gpu_check: skipped: %s\n' "${SKIPPED[@]}"
fi
if ((${#FAILED[@]})); then
    echo "gpu_check: ${#FAILED[@]} step(s) failed: ${FAILED[*]}"
    exit 1
fi
echo "gpu_check: every step passed"
