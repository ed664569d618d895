import json
import math

import numpy as np
import pytest

from reid.datasets.records import label_arrays
from reid.datasets.synthetic import make_synthetic_market
from reid.errors import ConfigError
from reid.evaluation.metrics import (
    cosine_distance,
    evaluate_rank,
    ranked_matches,
    summary_table,
    to_json,
)

# Hand-worked example. Gallery items (pid, camera):
#   g0 (1, 2)  g1 (2, 2)  g2 (1, 1)  g3 (-1, 3) junk  g4 (0, 3) distractor  g5 (1, 3)  g6 (3, 1)
G_PIDS = np.array([1, 2, 1, -1, 0, 1, 3])
G_CAMIDS = np.array([2, 2, 1, 3, 3, 3, 1])
Q_PIDS = np.array([1, 2, 4])
Q_CAMIDS = np.array([1, 1, 1])
DISTMAT = np.array(
    [
        # Query A (pid 1, cam 1). Sorted: g2 (same pid and camera: removed), g1 wrong, g3 (junk: removed),
        # g4 wrong, g0 HIT, g6 wrong, g5 HIT. Kept ranks of the hits: 3 and 5.
        #   AP = (1/3 + 2/5) / 2 = 11/30;  INP = 2 hits / rank 5 = 2/5;  first hit at rank 3.
        [0.50, 0.10, 0.05, 0.20, 0.30, 0.90, 0.60],
        # Query B (pid 2, cam 1). g1 (pid 2, camera 2) comes first: AP = 1, INP = 1, first hit at rank 1.
        [0.40, 0.10, 0.30, 0.90, 0.20, 0.80, 0.70],
        # Query C (pid 4): nobody in the gallery, so it is skipped.
        [0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70],
    ]
)


def test_hand_worked_example():
    metrics = evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMIDS, G_CAMIDS)
    assert metrics.mAP == pytest.approx((11 / 30 + 1) / 2)  # 41/60
    assert metrics.mINP == pytest.approx((2 / 5 + 1) / 2)
    # max_rank 50 is capped at the 7 gallery items; query A's first hit is rank 3, query B's rank 1.
    np.testing.assert_allclose(metrics.cmc, [0.5, 0.5, 1, 1, 1, 1, 1])
    assert (metrics.num_valid_queries, metrics.num_queries) == (2, 3)
    np.testing.assert_allclose(metrics.average_precision, [11 / 30, 1.0, np.nan])
    assert metrics.rank(3) == 1.0


def test_hand_worked_example_without_junk_rule():
    # Query A now also sees g3 as a wrong match at rank 2: hits at ranks 4 and 6.
    metrics = evaluate_rank(DISTMAT[:1], Q_PIDS[:1], G_PIDS, Q_CAMIDS[:1], G_CAMIDS, junk_pid=None)
    assert metrics.mAP == pytest.approx((1 / 4 + 2 / 6) / 2)
    assert metrics.mINP == pytest.approx(2 / 6)


def test_ranked_matches_applies_the_protocol():
    indices, matches = ranked_matches(DISTMAT[0], 1, 1, G_PIDS, G_CAMIDS, top_k=4)
    np.testing.assert_array_equal(indices, [1, 4, 0, 6])
    np.testing.assert_array_equal(matches, [False, False, True, False])
    indices, _ = ranked_matches(DISTMAT[0], 1, 1, G_PIDS, G_CAMIDS, top_k=10, junk_pid=None)
    np.testing.assert_array_equal(indices, [1, 3, 4, 0, 6, 5])


def _brute_force(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """Straight from the definitions, one query at a time, in pure Python."""
    aps, inps, first_ranks = [], [], []
    for i in range(len(q_pids)):
        order = sorted(range(len(g_pids)), key=lambda j: distmat[i][j])  # sorted() is stable
        kept = [
            j
            for j in order
            if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])
        ]
        hit_ranks = [rank for rank, j in enumerate(kept, start=1) if g_pids[j] == q_pids[i]]
        if not hit_ranks:
            aps.append(math.nan)
            continue
        aps.append(sum(n / rank for n, rank in enumerate(hit_ranks, start=1)) / len(hit_ranks))
        inps.append(len(hit_ranks) / hit_ranks[-1])
        first_ranks.append(hit_ranks[0])
    cmc = [sum(first <= k for first in first_ranks) / len(first_ranks) for k in range(1, max_rank + 1)]
    valid_aps = [ap for ap in aps if not math.isnan(ap)]
    return cmc, sum(valid_aps) / len(valid_aps), sum(inps) / len(inps), aps


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_matches_brute_force_on_random_data_with_ties(seed, chunk_size):
    rng = np.random.default_rng(seed)
    num_q, num_g = 30, 45
    q_pids, g_pids = rng.integers(0, 6, num_q), rng.integers(-1, 6, num_g)
    q_camids, g_camids = rng.integers(1, 4, num_q), rng.integers(1, 4, num_g)
    distmat = rng.integers(0, 5, (num_q, num_g)).astype(np.float32)  # few values: many ties
    metrics = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20, chunk_size=chunk_size)
    cmc, mean_ap, mean_inp, aps = _brute_force(distmat.tolist(), q_pids, g_pids, q_camids, g_camids, 20)
    np.testing.assert_allclose(metrics.cmc, cmc)
    assert metrics.mAP == pytest.approx(mean_ap)
    assert metrics.mINP == pytest.approx(mean_inp)
    np.testing.assert_allclose(metrics.average_precision, aps)
    assert metrics.num_valid_queries == sum(not math.isnan(ap) for ap in aps)


def test_errors():
    with pytest.raises(ConfigError, match="no query has a correct match"):
        evaluate_rank(DISTMAT[2:], Q_PIDS[2:], G_PIDS, Q_CAMIDS[2:], G_CAMIDS)
    with pytest.raises(ConfigError, match=r"g_pids must have shape \(7,\)"):
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS[:6], Q_CAMIDS, G_CAMIDS)
    with pytest.raises(ConfigError, match=r"distmat must be \(Q, G\)"):
        evaluate_rank(DISTMAT[0], Q_PIDS, G_PIDS, Q_CAMIDS, G_CAMIDS)
    with pytest.raises(ConfigError, match="max_rank"):
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMIDS, G_CAMIDS, max_rank=0)
    metrics = evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMIDS, G_CAMIDS)
    with pytest.raises(ConfigError, match="outside"):
        metrics.rank(8)
    with pytest.raises(ValueError, match="read-only"):
        metrics.cmc[0] = 1.0


def test_cosine_distance():
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((4, 8)), rng.standard_normal((5, 8))
    expected = [[1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for b in g] for a in q]
    distances = cosine_distance(q, g)
    assert distances.shape == (4, 5)
    assert distances.dtype == np.float32
    np.testing.assert_allclose(distances, expected, atol=1e-6)
    np.testing.assert_allclose(cosine_distance(3 * q, 0.5 * g), expected, atol=1e-6)
    with pytest.raises(ConfigError, match="embeddings must be"):
        cosine_distance(q, g[:, :4])


def test_summary_table_and_json():
    metrics = evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMIDS, G_CAMIDS)
    table = summary_table(metrics)
    assert table.splitlines() == [
        "mAP        68.33%",
        "mINP       70.00%",
        "Rank-1     50.00%",
        "Rank-5    100.00%",
        "queries    2 of 3",
    ]
    data = json.loads(json.dumps(to_json(metrics)))
    assert data == {
        "mAP": pytest.approx(41 / 60),
        "mINP": pytest.approx(0.7),
        "rank1": 0.5,
        "rank5": 1.0,  # no rank10: the gallery has 7 items
        "cmc": [0.5, 0.5, 1, 1, 1, 1, 1],
        "num_queries": 3,
        "num_valid_queries": 2,
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    dataset = make_synthetic_market(tmp_path_factory.mktemp("market"))
    return (*label_arrays(dataset.query), *label_arrays(dataset.gallery))


def test_cheating_identity_embeddings_are_perfect(synthetic):
    q_pids, q_camids, g_pids, g_camids = synthetic
    columns = {pid: i for i, pid in enumerate(np.unique(np.concatenate([q_pids, g_pids])))}
    q = np.eye(len(columns))[[columns[p] for p in q_pids]]
    g = np.eye(len(columns))[[columns[p] for p in g_pids]]
    metrics = evaluate_rank(cosine_distance(q, g), q_pids, g_pids, q_camids, g_camids)
    assert (metrics.mAP, metrics.mINP, metrics.rank(1)) == (1.0, 1.0, 1.0)
    assert metrics.num_valid_queries == len(q_pids)


def _expected_random(num_kept: int, num_hits: int) -> tuple[float, float, float]:
    """Expected AP, INP and rank-1 hit of a uniformly random ranking of num_kept items, num_hits correct.

    AP: E[rel_k] = R/N and E[rel_j rel_k] = R(R-1)/(N(N-1)) for j != k, so
    E[AP] = (1/R) sum_k (1/k) sum_{j<=k} E[rel_j rel_k] = (H_N + (N - H_N)(R-1)/(N-1)) / N.
    INP: the last hit is at rank m with probability C(m-1, R-1) / C(N, R).
    """
    n, r = num_kept, num_hits
    harmonic = sum(1 / k for k in range(1, n + 1))
    ap = (harmonic + ((n - harmonic) * (r - 1) / (n - 1) if n > 1 else 0.0)) / n
    inp = sum(r / m * math.comb(m - 1, r - 1) for m in range(r, n + 1)) / math.comb(n, r)
    return ap, inp, r / n


def test_random_embeddings_score_at_chance(synthetic):
    q_pids, q_camids, g_pids, g_camids = synthetic
    expected = []
    for pid, camid in zip(q_pids, q_camids, strict=True):
        kept = (g_pids != -1) & ~((g_pids == pid) & (g_camids == camid))
        expected.append(_expected_random(int(kept.sum()), int((kept & (g_pids == pid)).sum())))
    expected_ap, expected_inp, expected_rank1 = np.mean(expected, axis=0)
    assert expected_ap < 0.3  # so that a good ranker could not pass the comparison below

    rng = np.random.default_rng(0)
    runs = []
    for _ in range(60):
        q = rng.standard_normal((len(q_pids), 16))
        g = rng.standard_normal((len(g_pids), 16))
        metrics = evaluate_rank(cosine_distance(q, g), q_pids, g_pids, q_camids, g_camids)
        runs.append((metrics.mAP, metrics.mINP, metrics.rank(1)))
    measured_ap, measured_inp, measured_rank1 = np.mean(runs, axis=0)
    assert measured_ap == pytest.approx(expected_ap, abs=0.02)
    assert measured_inp == pytest.approx(expected_inp, abs=0.02)
    assert measured_rank1 == pytest.approx(expected_rank1, abs=0.03)
