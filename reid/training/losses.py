"""The BoT losses besides cross-entropy (which is ``F.cross_entropy(..., label_smoothing=ε)``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_hard_triplet_loss(
    features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3
) -> torch.Tensor:
    """Hermans et al.'s batch-hard triplet loss on Euclidean distances: for each anchor, its farthest
    positive against its closest negative, ``relu(d_ap - d_an + margin)`` averaged over anchors
    (``margin=0``: the soft margin ``softplus(d_ap - d_an)``). Anchors without a positive or without a
    negative in the batch are left out."""
    squared = features.pow(2).sum(dim=1)
    gram = features @ features.t()
    distances = (squared[:, None] + squared[None, :] - 2 * gram).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive, negative = same & ~eye, ~same
    usable = positive.any(dim=1) & negative.any(dim=1)
    hardest_positive = distances.masked_fill(~positive, float("-inf")).amax(dim=1)
    hardest_negative = distances.masked_fill(~negative, float("inf")).amin(dim=1)
    gap = (hardest_positive - hardest_negative)[usable]
    if gap.numel() == 0:
        return features.sum() * 0.0  # keeps the graph (and DDP) whole when a batch has no triplet
    return F.softplus(gap).mean() if margin == 0 else F.relu(gap + margin).mean()
