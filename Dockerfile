# syntax=docker/dockerfile:1
# The reid service image. Weights: mount a checkpoint at /weights, or pull a zoo model into the image's
# weights cache (/cache) at build time with WEIGHTS (a name from `reid weights list`, or an https URL):
#
#   GPU (default): docker build -t reid:gpu .
#   CPU:           docker build -t reid:cpu --build-arg VARIANT=cpu --build-arg BASE_IMAGE=python:3.11-slim-bookworm .
#   With a model:  docker build -t reid:bot --build-arg WEIGHTS=fastreid/market_bot_R50-ibn .
#                  (the image then serves that model by default, from the cache, without network)
#
# torch==2.14.1 from PyPI is the CUDA 13.0 build (2.14.1+cu130), so the default base is CUDA 13.0. Its
# "base" flavour is enough: the torch and faiss wheels bring their own CUDA libraries, and the image adds the
# driver compatibility layer and the NVIDIA_* variables that the NVIDIA container toolkit reads.
ARG BASE_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04

# --- Python on top of the base: CUDA images are plain Ubuntu, python:* images already have it -------------
FROM ${BASE_IMAGE} AS python
# Versions come from the base image's release; pinning them here would break on its next point release.
# hadolint ignore=DL3008
RUN if ! python3 -c "import ensurepip, venv" 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# --- builder: a virtual environment holding the package and its dependencies -------------------------------
FROM python AS builder
# gpu: faiss-gpu-cu12 and PyPI's CUDA torch; cpu: faiss-cpu and the CPU torch wheel from TORCH_CPU_INDEX
# (leave TORCH_CPU_INDEX empty to take PyPI's torch instead, e.g. behind a PyPI-only mirror).
ARG VARIANT=gpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reid ./reid
COPY app ./app
# The cache mount keeps the multi-GB torch download across rebuilds without putting it in a layer.
# An extra index whose torch is 2.14.1+cpu wins over PyPI's 2.14.1: the pins stay in pyproject.toml.
# The milvus extra lets the same image serve a Milvus gallery (compose profile "milvus"). Each variant carries
# the accelerated runtime of its hardware (REID_WEIGHTS pointing at an artifact of `reid export` selects it):
# OpenVINO in the CPU image, TensorRT (torch-tensorrt) in the GPU image.
RUN --mount=type=cache,target=/root/.cache/pip \
    case "${VARIANT}" in \
        gpu) extra_index=""; runtime_extra="tensorrt" ;; \
        cpu) extra_index="${TORCH_CPU_INDEX}"; runtime_extra="openvino" ;; \
        *) echo "VARIANT must be gpu or cpu, got '${VARIANT}'" >&2; exit 1 ;; \
    esac \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install ${extra_index:+--extra-index-url "${extra_index}"} \
        ".[${VARIANT},${runtime_extra},milvus]" \
    && /opt/venv/bin/reid --help > /dev/null

# --- runtime: the base, Python, the environment and an unprivileged user ----------------------------------
FROM python AS runtime
ARG VARIANT=gpu
LABEL org.opencontainers.image.title="reid" \
      org.opencontainers.image.description="Person re-identification embedding and search service (${VARIANT})"
RUN groupadd --gid 10001 reid \
    && useradd --no-log-init --uid 10001 --gid reid --create-home --home-dir /home/reid \
        --shell /usr/sbin/nologin reid \
    && mkdir -p /weights /gallery /cache \
    && chown reid:reid /gallery /cache
COPY --from=builder /opt/venv /opt/venv
# Empty: no model in the image. A zoo name or https URL: pulled below and served by default.
ARG WEIGHTS=
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REID_WEIGHTS=${WEIGHTS:-/weights} \
    REID_HOME=/cache \
    REID_GALLERY_DIR=/gallery
# A new named volume copies /gallery's owner, so the service can write to it.
VOLUME ["/weights", "/gallery"]
# Numeric, so runtimes that enforce "non-root" (Kubernetes runAsNonRoot) can check it.
USER 10001:10001
# Downloaded, verified against the zoo's hash (or recorded), loaded once and described by a manifest.
RUN if [ -n "${WEIGHTS}" ]; then reid weights pull "${WEIGHTS}"; fi
WORKDIR /home/reid
EXPOSE 8000
# Ready = weights loaded, warmed up and the gallery open; urlopen raises (exit 1) on 503 or no answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
# One worker: the gallery directory takes a single writer process. Extra arguments become `reid serve` flags.
ENTRYPOINT ["reid", "serve", "--host", "0.0.0.0", "--port", "8000"]
