import numpy as np
import pytest

from reid.embeddings import aggregate, aggregate_groups, l2_normalize
from reid.errors import ConfigError


def test_l2_normalize_keeps_zero_rows():
    out = l2_normalize([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    assert out.dtype == np.float32


def test_aggregate_is_the_normalised_mean_of_normalised_crops():
    rng = np.random.default_rng(0)
    crops = rng.normal(size=(5, 8)) * rng.uniform(0.5, 5, size=(5, 1))  # feature norms vary
    unit = crops / np.linalg.norm(crops, axis=1, keepdims=True)
    want = unit.mean(axis=0) / np.linalg.norm(unit.mean(axis=0))
    np.testing.assert_allclose(aggregate(crops), want, rtol=1e-5, atol=1e-6)
    weights = np.array([1.0, 0.0, 2.0, 0.5, 0.0])
    weighted = (weights[:, None] * unit).sum(axis=0)
    np.testing.assert_allclose(
        aggregate(crops, weights), weighted / np.linalg.norm(weighted), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("crops", "weights", "message"),
    [
        (np.empty((0, 4)), None, "at least one crop"),
        (np.eye(2), [1.0], "2 crops"),
        (np.eye(2), [1.0, -1.0], "non-negative"),
        (np.array([[1.0, 0.0], [-1.0, 0.0]]), None, "cancel out"),
    ],
)
def test_aggregate_refuses(crops, weights, message):
    with pytest.raises(ConfigError, match=message):
        aggregate(crops, weights)


def test_aggregate_groups_in_order_of_first_appearance():
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.2], [0.0, 2.0]])
    keys, matrix = aggregate_groups(features, ["b", "a", "b", "a"])
    assert keys == ["b", "a"]
    np.testing.assert_allclose(matrix[1], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(matrix[0], aggregate(features[[0, 2]]), atol=1e-6)
