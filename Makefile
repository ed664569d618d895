# Two entry points do all set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000
# Other kernels than the host's everywhere a test could meet SIMD-specific rounding: generic ATen vector
# kernels, OpenBLAS (numpy) and FAISS; oneDNN (torch's convolutions, OpenVINO) and MKL capped at AVX2, the
# oldest instruction set CI hosts have (below it OpenVINO has no kernels for some layers). A test that
# passes only on one CPU's kernels fails here.
PORTABLE_ENV := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
	OPENBLAS_CORETYPE=Nehalem FAISS_OPT_LEVEL=generic

.PHONY: install install-serve serve test test-portable lint typecheck bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# Serving needs the library, the web stack and FAISS; the tests also need the dev tools, Milvus and Ray.
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[cpu]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[cpu,dev]'
	touch $@

install-serve: $(VENV)/.installed-serve

install: $(VENV)/.installed

serve: install-serve
	$(BIN)/reid serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

test-portable: install
	$(PORTABLE_ENV) $(BIN)/python -m pytest

bench: install
	$(BIN)/reid bench
