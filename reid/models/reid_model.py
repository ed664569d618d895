"""Backbone + BNNeck head: picture tensor in, re-ID feature out (L2 normalisation is the engine's job)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reid.models.config import ReIDConfig
from reid.models.head import BNNeckHead
from reid.models.registry import get_config
from reid.models.resnet import ResNet

DEFAULT_BACKBONE = "se_resnet50_ibn_a"


class ReIDModel(nn.Module):
    """State-dict layout: ``backbone.*`` (torchvision/IBN-Net names), ``head.pool.p`` (GeM),
    ``head.bnneck.*``, ``head.classifier.weight`` (optional)."""

    def __init__(self, cfg: ReIDConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNet(cfg.backbone)
        self.head = BNNeckHead(cfg)

    @property
    def embedding_dim(self) -> int:
        return self.cfg.embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_features(x))


def reid_config(
    backbone: str = DEFAULT_BACKBONE,
    *,
    last_stride: int = 1,
    backbone_overrides: dict[str, Any] | None = None,
    **head: Any,
) -> ReIDConfig:
    """A re-ID config from a backbone preset. Default: SE-IBN-ResNet50, last_stride=1, avg + BNNeck."""
    overrides = {"last_stride": last_stride, "num_classes": 0, **(backbone_overrides or {})}
    return ReIDConfig(backbone=get_config(backbone, **overrides), backbone_name=backbone, **head)


def create_reid_model(backbone: str = DEFAULT_BACKBONE, **kwargs: Any) -> ReIDModel:
    return ReIDModel(reid_config(backbone, **kwargs))
