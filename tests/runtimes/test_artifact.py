"""The artifact manifest and the fingerprint rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid.errors import CheckpointError
from reid.runtimes.artifact import (
    SHARE_THRESHOLD,
    ArtifactManifest,
    Verification,
    artifact_fingerprint,
    read_artifact_manifest,
)


def check(error: float, threshold: float = 0.05, *, forced: bool = False) -> Verification:
    return Verification(
        relative_error=error,
        threshold=threshold,
        images=8,
        batch_sizes=(1, 8),
        inter_image_distance=1.0,
        forced=forced,
    )


def test_fingerprint_rule() -> None:
    source = "resnet18-0123456789abcdef"
    # Verified under the tight threshold: same embedding function for a gallery, whatever the precision.
    assert artifact_fingerprint(source, "onnxruntime", "fp32", check(1e-6, 0.01)) == source
    assert artifact_fingerprint(source, "openvino", "bf16", check(SHARE_THRESHOLD)) == source
    # Passed its own (looser) threshold, but not the tight one: a gallery of its own.
    derived = artifact_fingerprint(source, "openvino", "bf16", check(0.02))
    assert derived == f"{source}+openvino-bf16"
    # Forced past a failed verification: never shared, even if the error looks small.
    assert artifact_fingerprint(source, "onnxruntime", "fp32", check(0.005, 0.0, forced=True)) != source
    assert not check(float("nan")).passed


def test_manifest_round_trips_and_rejects_unknown_fields(onnx_artifact: Path) -> None:
    manifest = read_artifact_manifest(onnx_artifact)
    record = manifest.to_dict()
    assert ArtifactManifest.from_dict(record) == manifest
    with pytest.raises(CheckpointError, match="unknown"):
        ArtifactManifest.from_dict({**record, "surprise": 1})
    with pytest.raises(CheckpointError, match="invalid artifact manifest"):
        ArtifactManifest.from_dict({k: v for k, v in record.items() if k != "batch"})
