"""The BNNeck re-ID head (Luo et al., "Bag of Tricks"; fast-reid's EmbeddingHead at inference)."""

from __future__ import annotations

import torch
from torch import nn

from reid.models.config import ReIDConfig
from reid.models.layers import GeneralizedMeanPooling


class _GlobalMaxPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3), keepdim=True)


class _GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class BNNeckHead(nn.Module):
    """pool → (BatchNorm1d with a frozen zero bias) → feature; the classifier is kept only so training
    checkpoints load strictly, and is never used at inference."""

    def __init__(self, cfg: ReIDConfig) -> None:
        super().__init__()
        dim = cfg.embedding_dim
        self.neck_feat = cfg.neck_feat
        self.pool: nn.Module
        if cfg.pooling == "gem":
            self.pool = GeneralizedMeanPooling(cfg.gem_p, cfg.gem_eps, learnable=cfg.gem_learnable)
        elif cfg.pooling == "max":
            self.pool = _GlobalMaxPool()
        else:
            self.pool = _GlobalAvgPool()
        self.bnneck = nn.BatchNorm1d(dim) if cfg.bnneck else None
        if self.bnneck is not None:
            nn.init.ones_(self.bnneck.weight)
            nn.init.zeros_(self.bnneck.bias)
            self.bnneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, cfg.num_classes, bias=False) if cfg.num_classes else None

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        feat = self.pool(fmap).flatten(1)
        if self.bnneck is None or self.neck_feat == "before":
            return feat
        return self.bnneck(feat)
