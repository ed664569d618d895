import numpy as np
import pytest

from reid.errors import ConfigError
from reid.evaluation.thresholds import pair_scores, thresholds_for, thresholds_table


def test_thresholds_on_a_hand_made_set():
    impostor = np.arange(1000) / 1000  # 0.000 .. 0.999, all distinct
    genuine = np.array([0.2, 0.5, 0.95, 0.985, 0.9895, 0.995])
    one, tenth = thresholds_for(genuine, impostor, (0.01, 0.001))
    # 1 %: 10 impostor pairs may pass; the 11th highest (0.989) must not → threshold just above it.
    assert one.score == pytest.approx(0.989)
    assert one.score > 0.989
    assert (one.measured_fmr, one.tmr) == (0.01, pytest.approx(2 / 6))
    # 0.1 %: one impostor pair may pass (0.999); 0.998 must not.
    assert tenth.score == pytest.approx(0.998)
    assert tenth.score > 0.998
    assert (tenth.measured_fmr, tenth.tmr, tenth.reliable) == (0.001, 0.0, True)
    assert "0.9890" in thresholds_table([one, tenth])


def test_a_rate_below_one_impostor_pair_is_coarse():
    (level,) = thresholds_for(np.array([0.9]), np.array([0.1, 0.3]), (0.01,))
    assert level.score > 0.3
    assert level.measured_fmr == 0.0
    assert not level.reliable
    assert "coarse" in thresholds_table([level])


def test_pairs_follow_the_ranking_protocol():
    e = np.eye(4, dtype=np.float32)
    query = e[[0]]
    gallery = e[[0, 0, 1, 2]] + [[0, 0, 0, 0], [0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0, 0, 1]]
    q_pids, q_cams = np.array([1]), np.array([1])
    g_pids, g_cams = np.array([1, 1, 2, -1]), np.array([1, 2, 1, 2])
    genuine, impostor = pair_scores(query, gallery, q_pids, g_pids, q_cams, g_cams)
    # gallery 0: same person, same camera → left out; 1: genuine; 2: impostor; 3: junk → left out
    np.testing.assert_allclose(genuine, [1.0], atol=1e-6)
    np.testing.assert_allclose(impostor, [0.5 / np.sqrt(1.25)], atol=1e-6)


def test_refusals():
    with pytest.raises(ConfigError, match="genuine and impostor"):
        thresholds_for(np.array([]), np.array([0.1]))
    with pytest.raises(ConfigError, match="strictly between"):
        thresholds_for(np.array([0.5]), np.array([0.1]), (0.0,))
