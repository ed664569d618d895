import numpy as np
import pytest

from reid.gallery.ranking import SCORE_TIE_TOLERANCE, best_first, top_k

TINY = SCORE_TIE_TOLERANCE / 10  # the size of float noise between two kernels


def test_scores_within_the_tolerance_tie_and_go_to_the_lower_id():
    scores = np.array([0.5, 0.5 + TINY, 0.5 - TINY, 0.9, 0.5 + 2 * TINY], dtype=np.float32)
    ids = np.array([7, 9, 3, 20, 1])
    assert ids[best_first(scores, ids)].tolist() == [20, 1, 3, 7, 9]


def test_scores_further_apart_than_the_tolerance_keep_score_order():
    scores = np.array([0.5, 0.5 + 10 * SCORE_TIE_TOLERANCE, 0.5 - 10 * SCORE_TIE_TOLERANCE])
    ids = np.array([1, 2, 3])
    assert ids[best_first(scores, ids)].tolist() == [2, 1, 3]


@pytest.mark.parametrize("n", [0, 1])
def test_best_first_of_nothing_or_one(n):
    assert best_first(np.ones(n), np.arange(n)).tolist() == list(range(n))


def test_top_k_lets_every_candidate_tied_with_the_kth_compete():
    # Ids 5..1 tie at the cut (the noise of the kernel decides which scores a few ulps higher); the
    # lowest ids win whichever way the noise went.
    rng = np.random.default_rng(0)
    scores = (0.7 + rng.uniform(-TINY, TINY, size=(3, 5))).astype(np.float32)
    scores = np.concatenate([scores, np.full((3, 1), 0.95, dtype=np.float32)], axis=1)
    ids = np.array([5, 4, 3, 2, 1, 40])
    top_scores, top_ids = top_k(scores, np.broadcast_to(ids, scores.shape), 3)
    assert top_ids.tolist() == [[40, 1, 2]] * 3
    assert top_scores[:, 0].tolist() == pytest.approx([0.95] * 3)


def test_top_k_pads_like_faiss():
    scores = np.array([[0.2, -np.inf, 0.4]], dtype=np.float32)
    ids = np.array([[1, 2, -1]])
    top_scores, top_ids = top_k(scores, ids, 3)
    assert top_ids.tolist() == [[1, -1, -1]]
    assert top_scores[0, 0] == pytest.approx(0.2)
    assert np.isneginf(top_scores[0, 1:]).all()
