"""What the benchmark scripts print about the host and their repeated runs (standard library only: the
fast-reid side of ``fastreid_compare.py`` imports it from fast-reid's own environment too)."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

# The SIMD features that decide which runtime and precision a CPU should use.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_description() -> str:
    """CPU model and the SIMD flags that decide the runtime (from /proc/cpuinfo on Linux)."""
    model, family, flags = platform.processor() or platform.machine(), "", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "cpu family":
                family = f" (family {value.strip()})"
            elif key.strip() == "flags":
                flags = set(value.split())
    listed = " ".join(f"{f}{'+' if f in flags else '-'}" for f in CPU_FLAGS)
    return f"{model}{family}, {os.cpu_count()} logical CPUs; {listed}"


def spread(values: Sequence[float], digits: int = 1) -> str:
    """The median of repeated runs and their range: ``50.4 (46.9–52.2)``."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"
