"""Runtimes behind :class:`reid.engine.Extractor`: eager PyTorch, ONNX Runtime, OpenVINO, TensorRT.

A checkpoint runs on ``torch``; the other runtimes run artifacts written by ``reid export``, each
recognised by its suffix — ``.onnx`` (onnxruntime), ``.xml`` (OpenVINO IR, or a folder holding one),
``.ep`` (a TensorRT-compiled ``torch.export`` program) — and described by a manifest beside it. Runtime
modules import their library only when an artifact of theirs is opened.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from reid.errors import ConfigError
from reid.runtimes.artifact import (
    ArtifactManifest,
    ArtifactRuntime,
    artifact_manifest_path,
    read_artifact_manifest,
)
from reid.runtimes.base import RUNTIMES, BatchProfile, Runtime, RuntimeName

ARTIFACT_SUFFIXES: dict[str, RuntimeName] = {".onnx": "onnxruntime", ".xml": "openvino", ".ep": "tensorrt"}
_CLASSES: dict[RuntimeName, tuple[str, str]] = {
    "onnxruntime": ("reid.runtimes.onnx", "OnnxRuntime"),
    "openvino": ("reid.runtimes.openvino", "OpenVINORuntime"),
    "tensorrt": ("reid.runtimes.tensorrt", "TensorRTRuntime"),
}

__all__ = [
    "ARTIFACT_SUFFIXES",
    "RUNTIMES",
    "ArtifactManifest",
    "BatchProfile",
    "Runtime",
    "RuntimeName",
    "find_artifact",
    "open_artifact",
    "open_runtime",
    "runtime_class",
    "runtime_for_path",
]


def runtime_for_path(path: str | Path) -> RuntimeName | None:
    """The runtime an artifact's suffix names; ``None`` for anything else (a checkpoint)."""
    return ARTIFACT_SUFFIXES.get(Path(path).suffix.lower())


def artifacts_in(folder: Path) -> list[Path]:
    """Files of ``folder`` that are exported artifacts (a runtime suffix and a manifest beside them)."""
    return sorted(p for p in folder.iterdir() if runtime_for_path(p) and artifact_manifest_path(p).is_file())


def find_artifact(path: str | Path, runtime: str = "auto") -> Path | None:
    """The artifact ``path`` names (a file, or a folder holding exactly one), or ``None`` when it names
    none (a checkpoint, or a folder without artifacts). ``runtime``: only that runtime's artifacts count;
    a file of another runtime is an error."""
    path = Path(path)
    if path.is_dir():
        found = [p for p in artifacts_in(path) if runtime in ("auto", runtime_for_path(p))]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise ConfigError(f"{path} holds several exported artifacts ({names}); point to one file")
        return found[0] if found else None
    kind = runtime_for_path(path)
    if kind is None:
        return None
    if runtime not in ("auto", kind):
        raise ConfigError(f"{path.name} is an artifact of {kind}, but the runtime asked for is {runtime}")
    return path


def runtime_class(name: RuntimeName) -> type[ArtifactRuntime]:
    """The class of an artifact runtime, importing its module (and library) now."""
    if name not in _CLASSES:
        raise ConfigError(f"{name} runs checkpoints, not exported artifacts")
    module, attr = _CLASSES[name]
    cls: type[ArtifactRuntime] = getattr(importlib.import_module(module), attr)
    return cls


def open_runtime(path: Path, manifest: ArtifactManifest, device: torch.device | None) -> ArtifactRuntime:
    return runtime_class(manifest.runtime)(path, manifest, device)


def open_artifact(
    path: Path, device: torch.device | None = None, dtype: str = "auto"
) -> tuple[ArtifactRuntime, ArtifactManifest]:
    """Load an exported artifact into its runtime (on ``device``, or where the runtime runs by default).
    ``dtype`` other than ``auto`` must be the artifact's: the artifact was verified in its own precision
    only."""
    kind = runtime_for_path(path)
    if kind is None:
        raise ConfigError(f"{path} is not an exported artifact ({', '.join(ARTIFACT_SUFFIXES)})")
    manifest = read_artifact_manifest(path)
    if manifest.runtime != kind:
        raise ConfigError(f"{path.name} is described as a {manifest.runtime} artifact, not {kind}")
    if dtype not in ("auto", manifest.dtype):
        raise ConfigError(
            f"{path.name} was exported and verified for {manifest.dtype}; "
            f"export it again with --dtype {dtype}"
        )
    return open_runtime(path, manifest, device), manifest
