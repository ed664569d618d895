"""The ResNet family (v1/v2, basic/bottleneck, SE, IBN-a/b, non-local), built from one ResNetConfig."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from reid.errors import ConfigError
from reid.models.blocks import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    conv1x1,
)
from reid.models.config import ResNetConfig
from reid.models.layers import IBN, AttentionFactory, NonLocal, NormFactory, SEConv, SELayer

# IBN is applied in layer1..3 only (IBN-Net: instance statistics help shallow layers, hurt deep ones);
# IBN-b's post-add IN sits in the last unit of layer1..2.
_IBN_A_STAGES = 3
_IBN_B_STAGES = 2


@dataclass(frozen=True)
class FeatureInfo:
    """One multi-scale output: C1 (stem, before max-pool) .. C5 (layer4)."""

    index: int
    module: str
    channels: int
    reduction: int


class ResNet(nn.Module):
    """A ResNet whose module names match torchvision / IBN-Net / fast-reid checkpoints.

    ``forward`` returns logits when the config has ``num_classes > 0``, the C5 feature map when it is 0,
    and the list of selected C1..C5 maps when built with ``features_only=True``.
    """

    def __init__(
        self,
        cfg: ResNetConfig,
        *,
        features_only: bool = False,
        out_indices: Sequence[int] = (1, 2, 3, 4, 5),
    ) -> None:
        super().__init__()
        if features_only and (not out_indices or any(i not in range(1, 6) for i in out_indices)):
            raise ConfigError(f"out_indices must be a non-empty subset of 1..5, got {tuple(out_indices)}")
        self.cfg = cfg
        self.features_only = features_only
        self.out_indices = tuple(sorted(set(out_indices)))
        norm: NormFactory = partial(nn.BatchNorm2d, eps=cfg.bn_eps)
        preact = cfg.version == 2

        self.conv1 = nn.Conv2d(cfg.in_chans, 64, kernel_size=7, stride=2, padding=3, bias=cfg.conv_bias)
        if preact:
            # Keras pads with zeros before the pool; without a ReLU in front, -inf padding would differ.
            self.maxpool: nn.Module = nn.Sequential(nn.ZeroPad2d(1), nn.MaxPool2d(kernel_size=3, stride=2))
        else:
            self.bn1 = nn.InstanceNorm2d(64, affine=True, eps=cfg.bn_eps) if cfg.ibn == "b" else norm(64)
            self.relu = nn.ReLU(inplace=True)
            if cfg.stem_pool == "ceil":
                self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
            else:
                self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        inplanes = 64
        reduction = cfg.stem_reduction
        self._feature_info = [FeatureInfo(1, "conv1" if preact else "relu", 64, 2)]
        self._non_local_at: list[frozenset[int]] = []
        for i, (blocks, stride) in enumerate(zip(cfg.layers, cfg.strides, strict=True)):
            planes = 64 * 2**i
            self.add_module(f"layer{i + 1}", self._make_stage(i, inplanes, planes, blocks, stride, norm))
            inplanes = planes * cfg.expansion
            reduction *= stride
            self._feature_info.append(FeatureInfo(i + 2, f"layer{i + 1}", inplanes, reduction))
            n_nl = cfg.non_local[i]
            self._non_local_at.append(frozenset(range(blocks - n_nl, blocks)))
            if n_nl:
                nl = nn.ModuleList(
                    NonLocal(inplanes, 1 if cfg.non_local_width == "one" else inplanes // 2, eps=cfg.bn_eps)
                    for _ in range(n_nl)
                )
                self.add_module(f"NL_{i + 1}", nl)
        self.num_features = inplanes

        if preact:
            self.post_bn = norm(inplanes)
            self.post_relu = nn.ReLU(inplace=True)
        self.num_classes = 0 if features_only else cfg.num_classes
        if self.num_classes:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(inplanes, self.num_classes)
        self._init_weights()

    @property
    def feature_info(self) -> list[FeatureInfo]:
        """Channels and reduction of the selected outputs (all five unless ``features_only``)."""
        if not self.features_only:
            return list(self._feature_info)
        return [f for f in self._feature_info if f.index in self.out_indices]

    def _make_stage(
        self, stage: int, inplanes: int, planes: int, blocks: int, stride: int, norm: NormFactory
    ) -> nn.Sequential:
        cfg = self.cfg
        out_planes = planes * cfg.expansion
        attention: AttentionFactory | None = None
        if cfg.se:
            se_cls = SELayer if cfg.se_form == "linear" else SEConv
            attention = partial(se_cls, reduction=cfg.se_reduction)
        norm1: NormFactory | None = None
        if cfg.ibn == "a" and stage < _IBN_A_STAGES:
            norm1 = partial(IBN, eps=cfg.bn_eps)

        units: list[nn.Module] = []
        for j in range(blocks):
            is_strided = j == 0 if cfg.stride_placement == "first" else j == blocks - 1
            unit_stride = stride if is_strided else 1
            unit_in = inplanes if j == 0 else out_planes
            downsample, projection = self._shortcut(unit_in, out_planes, unit_stride, norm)
            if cfg.version == 2:
                preact_cls = PreActBottleneck if cfg.block == "bottleneck" else PreActBasicBlock
                units.append(
                    preact_cls(
                        unit_in,
                        planes,
                        stride=unit_stride,
                        downsample=downsample,
                        projection=projection,
                        norm=norm,
                        attention=attention,
                        conv_bias=cfg.conv_bias,
                    )
                )
                continue
            post_norm: NormFactory | None = None
            if cfg.ibn == "b" and stage < _IBN_B_STAGES and j == blocks - 1:
                post_norm = partial(nn.InstanceNorm2d, affine=True, eps=cfg.bn_eps)
            block_cls = Bottleneck if cfg.block == "bottleneck" else BasicBlock
            units.append(
                block_cls(
                    unit_in,
                    planes,
                    stride=unit_stride,
                    downsample=downsample,
                    norm=norm,
                    norm1=norm1,
                    attention=attention,
                    post_norm=post_norm,
                )
            )
        return nn.Sequential(*units)

    def _shortcut(
        self, inplanes: int, out_planes: int, stride: int, norm: NormFactory
    ) -> tuple[nn.Module | None, bool]:
        """(module, is_projection). Project when channels change, or when striding the torchvision way;
        otherwise a strided unit subsamples with a 1×1 max-pool (tf-slim / Keras)."""
        cfg = self.cfg
        if inplanes != out_planes or (stride != 1 and cfg.stride_placement == "first"):
            conv = conv1x1(inplanes, out_planes, stride, bias=cfg.conv_bias)
            return (nn.Sequential(conv, norm(out_planes)) if cfg.version == 1 else nn.Sequential(conv)), True
        if stride != 1:
            return nn.MaxPool2d(kernel_size=1, stride=stride), False
        return None, False

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # A fresh non-local unit must be an identity: its output BN starts at zero (modules() visits the
        # NonLocal before its BN, so redo it last).
        for m in self.modules():
            if isinstance(m, NonLocal):
                m.reset_output()

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.cfg.version == 1:
            x = self.bn1(x)
            if self.cfg.stem_relu:
                x = self.relu(x)
        return x

    def _run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        stage: nn.Sequential = getattr(self, f"layer{i + 1}")
        at = self._non_local_at[i]
        if not at:
            return stage(x)
        non_local: nn.ModuleList = getattr(self, f"NL_{i + 1}")
        k = 0
        for j, unit in enumerate(stage):
            x = unit(x)
            if j in at:
                x = non_local[k](x)
                k += 1
        return x

    def _post(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_relu(self.post_bn(x)) if self.cfg.version == 2 else x

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All of C1..C5 (C5 includes v2's final BN-ReLU)."""
        c1 = self._stem(x)
        outs = [c1]
        x = self.maxpool(c1)
        for i in range(4):
            x = self._run_stage(i, x)
            outs.append(x)
        outs[-1] = self._post(outs[-1])
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The C5 map (N, num_features, H/r, W/r)."""
        x = self.maxpool(self._stem(x))
        for i in range(4):
            x = self._run_stage(i, x)
        return self._post(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            pyramid = self.forward_pyramid(x)
            return [pyramid[i - 1] for i in self.out_indices]
        x = self.forward_features(x)
        if not self.num_classes:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))
