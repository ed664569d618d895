"""The verification metric: error relative to the distance between two different images."""

from __future__ import annotations

import numpy as np
import pytest

from reid.errors import ConfigError
from reid.export.verify import (
    neighbour_agreement,
    relative_error,
    sample_images,
    synthetic_jpegs,
    verify,
)
from reid.preprocess import PreprocessConfig


def test_relative_error_by_hand() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # Distances between the references: sqrt(2), 2, sqrt(2): median sqrt(2).
    candidate = reference.copy()
    candidate[1] = [0.6, 0.8]  # unit; distance to (0, 1) is sqrt(0.36 + 0.04)
    error, between = relative_error(reference, 3 * candidate)  # scale does not matter
    assert between == pytest.approx(np.sqrt(2))
    assert error == pytest.approx(np.sqrt(0.4) / np.sqrt(2))
    with pytest.raises(ConfigError, match="at least 2"):
        relative_error(reference[:1], reference[:1])


def test_verify_takes_the_worst_batch_size_and_fails_on_nan() -> None:
    reference = np.eye(4)
    images = np.zeros((4, 1))

    def embed(batch: np.ndarray) -> np.ndarray:
        return np.full((len(batch), 4), np.nan) if len(batch) == 1 else np.eye(4)[: len(batch)]

    result = verify(reference, embed, images, (4, 1), threshold=1.0)  # type: ignore[arg-type]
    assert result.relative_error == float("inf")
    assert not result.passed


def test_sample_images_follow_the_contract(tmp_path) -> None:
    contract = PreprocessConfig(height=32, width=16)
    assert tuple(sample_images(contract, count=3).shape) == (3, 3, 32, 16)
    for i, blob in enumerate(synthetic_jpegs(3, (40, 20), seed=2)):
        (tmp_path / f"{i}.jpg").write_bytes(blob)
    assert tuple(sample_images(contract, tmp_path).shape) == (3, 3, 32, 16)
    (tmp_path / "2.jpg").unlink()
    with pytest.raises(ConfigError, match="at least 3"):
        sample_images(contract, tmp_path)


def _on_an_arc(angles: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_neighbour_agreement_by_hand() -> None:
    # Gaps 0.1, 0.2, 0.3, 0.4, 0.5 along an arc: each point's nearest neighbour is the one before it
    # (the first's is the second), without ties.
    reference = _on_an_arc(np.array([0.0, 0.1, 0.3, 0.6, 1.0, 1.5]))
    assert neighbour_agreement(reference, 5 * reference, k=2) == 1.0
    # Rows 0 and 5 swap places: rows 0, 1 and 5 get another nearest neighbour, rows 2, 3, 4 keep theirs.
    assert neighbour_agreement(reference, reference[[5, 1, 2, 3, 4, 0]], k=1) == pytest.approx(0.5)
    assert neighbour_agreement(reference, np.full_like(reference, np.nan), k=2) == 0.0


def test_int8_needs_its_neighbours_kept() -> None:
    reference = _on_an_arc(np.cumsum(np.linspace(0.01, 0.05, 20)))  # growing gaps: no ties
    images = np.zeros((20, 1))

    shuffled = reference[np.random.default_rng(0).permutation(20)]

    def scrambled(batch: np.ndarray) -> np.ndarray:
        return shuffled[: len(batch)]

    loose = verify(reference, scrambled, images, (20,), threshold=10.0)  # type: ignore[arg-type]
    assert loose.passed
    assert loose.neighbour_agreement < 0.9
    strict = verify(reference, scrambled, images, (20,), threshold=10.0, min_agreement=0.9)  # type: ignore[arg-type]
    assert not strict.passed
