"""The record beside an exported artifact, and the rule that decides which gallery its embeddings join.

``model.onnx`` is described by ``model.onnx.json`` (``model.xml`` by ``model.xml.json``): the source
checkpoint (file, SHA-256, fingerprint), the preprocessing contract, the model config, the runtime and its
version, the precision, the batch profile, every file of the artifact with its SHA-256, and the
verification against eager fp32 — the measured error, the threshold it was held to, and whether ``--force``
wrote it anyway.

**Fingerprint rule.** An artifact keeps its source checkpoint's fingerprint — its vectors may share a
gallery with the checkpoint's — only when its verified relative error is at most :data:`SHARE_THRESHOLD`
(0.01 of the distance between two different images, far below anything that changes a ranking) and it was
not forced past its threshold. fp32 conversions always meet it; bf16/fp16/int8 keep it only where they do.
Every other artifact gets a derived fingerprint, ``<source>+<runtime>-<precision>``, so a gallery built
with the checkpoint refuses its vectors (and a gallery built with it refuses the checkpoint's).
"""

from __future__ import annotations

import json
import os
from abc import abstractmethod
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from reid.checkpoints import sha256_file
from reid.errors import CheckpointError, ConfigError
from reid.fileio import atomic_file
from reid.models import ReIDConfig
from reid.preprocess import PreprocessConfig
from reid.runtimes.base import PRECISIONS, RUNTIMES, BatchProfile, Precision, Runtime, RuntimeName

ARTIFACT_FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".json"
# Largest error (relative to the inter-image distance) an artifact may have and still be written.
THRESHOLDS: dict[Precision, float] = {"fp32": 0.01, "bf16": 0.05, "fp16": 0.05, "int8": 0.15}
# Share of each image's nearest neighbours an artifact must keep (int8: the rank-10 criterion).
MIN_AGREEMENT: dict[Precision, float] = {"fp32": 0.0, "bf16": 0.0, "fp16": 0.0, "int8": 0.9}
# Largest error at which an artifact's vectors may share a gallery with its source checkpoint's.
SHARE_THRESHOLD = 0.01


@dataclass(frozen=True, kw_only=True)
class Verification:
    """How the artifact compared with eager fp32 on the source weights.

    ``relative_error``: the largest distance between an image's artifact and eager embeddings (both
    L2-normalised), divided by the median distance between two different images' eager embeddings.
    ``neighbour_agreement``: how much of each image's 10 nearest other sample images (fewer with fewer
    samples) the artifact keeps, averaged; an int8 export verified on the user's own crops
    (``--samples``) must keep ``min_agreement`` (0.9) of them.
    """

    relative_error: float
    threshold: float
    images: int
    batch_sizes: tuple[int, ...]
    inter_image_distance: float
    neighbour_agreement: float = 1.0
    min_agreement: float = 0.0
    forced: bool = False

    @property
    def passed(self) -> bool:
        return self.relative_error <= self.threshold and self.neighbour_agreement >= self.min_agreement

    def to_dict(self) -> dict[str, Any]:
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**record, "batch_sizes": list(self.batch_sizes), "passed": self.passed}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Verification:
        values = {f.name: record[f.name] for f in fields(cls) if f.name in record}
        return cls(**{**values, "batch_sizes": tuple(values.get("batch_sizes", ()))})


def artifact_fingerprint(source: str, runtime: RuntimeName, dtype: Precision, check: Verification) -> str:
    """The fingerprint an artifact's embeddings carry (see the module docstring for the rule)."""
    if check.passed and not check.forced and check.relative_error <= SHARE_THRESHOLD:
        return source
    return f"{source}+{runtime}-{dtype}"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class ArtifactManifest:
    runtime: RuntimeName
    runtime_version: str
    artifact: str
    files: dict[str, str]
    dtype: Precision
    batch: BatchProfile
    model: ReIDConfig
    preprocess: PreprocessConfig
    source_file: str
    source_sha256: str
    source_fingerprint: str
    fingerprint: str
    verification: Verification
    exporter: str
    created_at: str = field(default_factory=_utc_now)
    format_version: int = ARTIFACT_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != ARTIFACT_FORMAT_VERSION:
            raise CheckpointError(
                f"artifact manifest format_version {self.format_version!r} is not supported"
            )
        if self.runtime not in RUNTIMES or self.dtype not in PRECISIONS:
            raise CheckpointError(f"unknown runtime {self.runtime!r} or precision {self.dtype!r}")
        if self.artifact not in self.files:
            raise CheckpointError(f"artifact manifest does not list its main file {self.artifact!r}")
        if any(Path(name).name != name for name in self.files):
            raise CheckpointError(f"artifact files must be bare names, got {sorted(self.files)}")

    @property
    def shares_gallery_with_source(self) -> bool:
        return self.fingerprint == self.source_fingerprint

    @property
    def embedding_dim(self) -> int:
        return self.model.embedding_dim

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        record.update(
            batch=self.batch.to_dict(),
            model=self.model.to_dict(),
            preprocess=self.preprocess.to_dict(),
            verification=self.verification.to_dict(),
            embedding_dim=self.embedding_dim,
            shares_gallery_with_source=self.shares_gallery_with_source,
        )
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ArtifactManifest:
        derived = {"embedding_dim", "shares_gallery_with_source"}
        names = {f.name for f in fields(cls)}
        unknown = set(record) - names - derived
        if unknown:
            raise CheckpointError(f"unknown artifact manifest field(s) {sorted(unknown)}")
        try:
            values = {k: v for k, v in record.items() if k in names}
            return cls(
                **{
                    **values,
                    "batch": BatchProfile.from_dict(record["batch"]),
                    "model": ReIDConfig.from_dict(record["model"]),
                    "preprocess": PreprocessConfig.from_dict(record["preprocess"]),
                    "verification": Verification.from_dict(record["verification"]),
                }
            )
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(f"invalid artifact manifest: {exc!r}") from exc


def artifact_manifest_path(artifact: str | os.PathLike[str]) -> Path:
    path = Path(artifact)
    return path.with_name(path.name + MANIFEST_SUFFIX)


def read_artifact_manifest(artifact: str | os.PathLike[str], *, check_files: bool = True) -> ArtifactManifest:
    """The manifest of ``artifact``; with ``check_files``, also that every file it lists has its SHA-256
    (so a manifest never vouches for other bytes than those it verified)."""
    artifact = Path(artifact)
    path = artifact_manifest_path(artifact)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{artifact} has no manifest {path.name}: only artifacts written by `reid export` can be run"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read artifact manifest {path}: {exc}") from exc
    if not isinstance(record, dict):
        raise CheckpointError(f"invalid artifact manifest {path}: expected a JSON object")
    manifest = ArtifactManifest.from_dict(record)
    if manifest.artifact != artifact.name:
        raise CheckpointError(f"{path} describes {manifest.artifact}, not {artifact.name}")
    if check_files:
        for name, digest in manifest.files.items():
            file = artifact.with_name(name)
            if not file.is_file():
                raise CheckpointError(f"artifact file {file} listed in {path.name} is missing")
            if sha256_file(file) != digest:
                raise CheckpointError(f"{file} does not match the SHA-256 in {path.name}: re-export it")
    return manifest


def write_artifact_manifest(artifact: Path, manifest: ArtifactManifest) -> Path:
    """Write the manifest beside ``artifact`` atomically."""
    path = artifact_manifest_path(artifact)
    # Readable like the artifact itself (the service may run as another user).
    with atomic_file(path, mode=0o644) as f:
        f.write((json.dumps(manifest.to_dict(), indent=2) + "\n").encode("utf-8"))
    return path


class ArtifactRuntime(Runtime):
    """A runtime that loads an exported artifact described by its manifest. ``device=None``: the
    runtime's own choice (OpenVINO: the CPU; TensorRT: the current GPU; ONNX Runtime: a GPU where it has
    a GPU execution provider and one is present, else the CPU)."""

    @abstractmethod
    def __init__(self, path: Path, manifest: ArtifactManifest, device: torch.device | None) -> None: ...

    def use_cuda_graphs(self, max_batch_size: int) -> None:
        """Replay CUDA graphs from now on, batches padded to a few sizes up to ``max_batch_size``."""
        raise ConfigError(f"the {self.name} runtime has no CUDA graphs (torch and tensorrt do)")

    @staticmethod
    @abstractmethod
    def library_version() -> str:
        """The version of the library that runs the artifact (recorded in manifests)."""
