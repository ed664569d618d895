import math

import numpy as np
import pytest

from reid.errors import ConfigError
from reid.gallery import RerankConfig, k_reciprocal_rerank
from reid.gallery.rerank import cosine_to_sq_euclidean

# Hand-worked example: five points on a line, distance |a - b|; one query q = 0 and gallery
# x = -1, a = 1.4, y = -1.5, z = -1.7 (joint order q, x, a, y, z). x is q's nearest neighbour but
# belongs to the tight group {x, y, z}; a is farther but q is among a's nearest: re-ranking must put a
# first.
POSITIONS = np.array([0.0, -1.0, 1.4, -1.5, -1.7])
Q, X, A, Y, Z = range(5)


def _joint():
    dist = np.abs(POSITIONS[:, None] - POSITIONS[None, :])
    return dist[:1, 1:], dist[:1, :1], dist[1:, 1:]


def _row_normalised():
    """Rows divided by their maximum, worked out by hand: q 1.7, x 2.4, a 3.1, y 2.9, z 3.1."""
    return np.array(
        [
            [0, 1 / 1.7, 1.4 / 1.7, 1.5 / 1.7, 1.0],
            [1 / 2.4, 0, 1.0, 0.5 / 2.4, 0.7 / 2.4],
            [1.4 / 3.1, 2.4 / 3.1, 0, 2.9 / 3.1, 1.0],
            [1.5 / 2.9, 0.5 / 2.9, 1.0, 0, 0.2 / 2.9],
            [1.7 / 3.1, 0.7 / 3.1, 1.0, 0.2 / 3.1, 0],
        ]
    )


def _hand_features():
    """V for k1 = 2, worked out by hand.

    N(p, 2) (p and its 2 nearest): q {q,x,a}, x {x,y,z}, a {a,q,x}, y {y,z,x}, z {z,y,x}.
    R(p, 2): q {q,a} (q is not in N(x)), x {x,y,z}, a {a,q}, y {x,y,z}, z {x,y,z}.
    R(p, 1) from N(p, 1) = q {q,x}, x {x,y}, a {a,q}, y {y,z}, z {z,y}: q {q}, x {x}, a {a},
    y {y,z}, z {y,z}. Every such set is more than 2/3 inside its parent R(p, 2), so R* = R.
    V[p, j] = exp(-d(p, j)) / Σ over R*(p).
    """
    d = _row_normalised()
    support = {Q: [Q, A], X: [X, Y, Z], A: [Q, A], Y: [X, Y, Z], Z: [X, Y, Z]}
    v = np.zeros((5, 5))
    for p, members in support.items():
        weights = [math.exp(-d[p, j]) for j in members]
        v[p, members] = np.array(weights) / sum(weights)
    return v


def _jaccard(vp, vg):
    return 1 - np.minimum(vp, vg).sum() / np.maximum(vp, vg).sum()


def test_hand_worked_example_without_query_expansion():
    v, d = _hand_features(), _row_normalised()
    # q shares no support with x, y or z: Jaccard distance 1. With a it shares {q, a}.
    expected = [0.7 * _jaccard(v[Q], v[g]) + 0.3 * d[Q, g] for g in (X, A, Y, Z)]
    assert expected[0] == pytest.approx(0.7 + 0.3 / 1.7)
    result = k_reciprocal_rerank(*_joint(), k1=2, k2=1, lambda_value=0.3)
    np.testing.assert_allclose(result, [expected], atol=1e-6)
    assert np.argsort(result[0]).tolist() == [1, 0, 2, 3]  # a, x, y, z: a jumps ahead of x
    # On paper: V_q = [0.69499, 0.30501] and V_a = [0.38898, 0.61102] on {q, a}, so
    # d_J = 1 - 0.69400 / 1.30600 = 0.46862 and 0.7 · 0.46862 + 0.3 · 1.4 / 1.7 = 0.57509.
    assert result[0, 1] == pytest.approx(0.57509, abs=1e-5)


def test_hand_worked_example_with_query_expansion():
    v, d = _hand_features(), _row_normalised()
    # k2 = 2: each V row becomes the mean of itself and its nearest neighbour's row.
    nearest = {Q: X, X: Y, A: Q, Y: Z, Z: Y}
    expanded = {p: (v[p] + v[n]) / 2 for p, n in nearest.items()}
    expected = [0.7 * _jaccard(expanded[Q], expanded[g]) + 0.3 * d[Q, g] for g in (X, A, Y, Z)]
    result = k_reciprocal_rerank(*_joint(), k1=2, k2=2, lambda_value=0.3)
    np.testing.assert_allclose(result, [expected], atol=1e-6)


def test_lambda_one_gives_the_row_normalised_distance():
    result = k_reciprocal_rerank(*_joint(), k1=2, k2=1, lambda_value=1.0)
    np.testing.assert_allclose(result, _row_normalised()[:1, 1:], atol=1e-6)


def test_default_parameters_on_small_inputs_use_every_image():
    x = np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q, g = x[:3], x[3:]
    result = k_reciprocal_rerank(
        cosine_to_sq_euclidean(q @ g.T), cosine_to_sq_euclidean(q @ q.T), cosine_to_sq_euclidean(g @ g.T)
    )
    assert result.shape == (3, 9)
    assert np.isfinite(result).all()
    assert (result >= 0).all()


def test_shape_and_parameter_errors():
    q_g, q_q, g_g = _joint()
    with pytest.raises(ConfigError, match="g_g"):
        k_reciprocal_rerank(q_g, q_q, g_g[:2, :2])
    with pytest.raises(ConfigError):
        k_reciprocal_rerank(q_g, q_q, g_g, lambda_value=1.5)
    with pytest.raises(ConfigError):
        RerankConfig(k1=0)
