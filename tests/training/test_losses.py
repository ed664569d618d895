import math

import pytest
import torch
import torch.nn.functional as F

from reid.training import batch_hard_triplet_loss

# Four points on a line: persons 0 (at 0 and 1) and 1 (at 3 and 7).
FEATURES = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_batch_hard_triplet_by_hand():
    # anchor: hardest positive, hardest negative → relu(ap - an + 0.3)
    # 0: 1, 3 → 0 ; 1: 1, 2 → 0 ; 2: 4, 2 → 2.3 ; 3: 4, 6 → 0
    loss = batch_hard_triplet_loss(FEATURES, LABELS, margin=0.3)
    assert float(loss) == pytest.approx(2.3 / 4, rel=1e-5)


def test_soft_margin_by_hand():
    gaps = [1 - 3, 1 - 2, 4 - 2, 4 - 6]
    want = sum(math.log1p(math.exp(g)) for g in gaps) / 4
    assert float(batch_hard_triplet_loss(FEATURES, LABELS, margin=0.0)) == pytest.approx(want, rel=1e-5)


def test_anchors_without_a_positive_are_left_out_and_gradients_flow():
    features = torch.cat([FEATURES, torch.tensor([[100.0, 0.0]])]).requires_grad_()
    loss = batch_hard_triplet_loss(features, torch.tensor([0, 0, 1, 1, 2]), margin=0.3)
    # The lone person 2 has no positive; it still serves as nobody's closest negative here.
    assert loss.item() == pytest.approx(2.3 / 4, rel=1e-5)
    loss.backward()
    assert features.grad is not None
    assert float(features.grad[4].abs().sum()) == 0.0


def test_label_smoothing_by_hand():
    # q = (1 - ε) one-hot + ε / C; loss = -Σ q log softmax
    logits, eps = torch.tensor([[2.0, 0.0, -1.0]]), 0.1
    log_p = [2 - math.log(math.exp(2) + 1 + math.exp(-1)), -math.log(math.exp(2) + 1 + math.exp(-1))]
    log_p.append(-1 + log_p[1])
    q = [1 - eps + eps / 3, eps / 3, eps / 3]
    want = -sum(qi * lp for qi, lp in zip(q, log_p, strict=True))
    assert float(F.cross_entropy(logits, torch.tensor([0]), label_smoothing=eps)) == pytest.approx(
        want, rel=1e-6
    )
