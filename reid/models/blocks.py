"""Residual units. Each takes norm/attention factories, so SE, IBN-a and IBN-b are configuration.

Names follow torchvision (``conv1``, ``bn1``, ..., ``downsample``), IBN-Net (``bn1.IN``/``bn1.BN``, the
post-add ``IN`` of IBN-b) and fast-reid (``se``). v1 units compute conv → BN → ReLU; v2 (pre-activation)
units compute BN → ReLU → conv, so their ``bn_i`` precedes ``conv_i``.
"""

from __future__ import annotations

import torch
from torch import nn

from reid.models.layers import AttentionFactory, NormFactory


def conv3x3(inplanes: int, planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=bias)


def conv1x1(inplanes: int, planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=bias)


def _optional(factory: NormFactory | AttentionFactory | None, channels: int) -> nn.Module | None:
    return factory(channels) if factory is not None else None


class BasicBlock(nn.Module):
    """Two 3×3 convs (ResNet-18/34). ``norm1`` may be IBN-a; ``post_norm`` is IBN-b's post-add IN."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm: NormFactory,
        norm1: NormFactory | None = None,
        attention: AttentionFactory | None = None,
        post_norm: NormFactory | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = (norm1 or norm)(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = _optional(attention, planes)
        self.downsample = downsample
        self.IN = _optional(post_norm, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        out = out + shortcut
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided) → 1×1 bottleneck, SE on the residual branch before the add (ResNet-50+)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm: NormFactory,
        norm1: NormFactory | None = None,
        attention: AttentionFactory | None = None,
        post_norm: NormFactory | None = None,
    ) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = (norm1 or norm)(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = norm(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = norm(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = _optional(attention, out_planes)
        self.downsample = downsample
        self.IN = _optional(post_norm, out_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        out = out + shortcut
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


class PreActBasicBlock(nn.Module):
    """Pre-activation basic unit. A projection shortcut reads the pre-activated input; a subsampling
    (max-pool) shortcut reads the raw input, as Keras ResNetV2 does."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        projection: bool = False,
        norm: NormFactory,
        attention: AttentionFactory | None = None,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.bn1 = norm(inplanes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = norm(planes)
        self.conv2 = conv3x3(planes, planes, bias=conv_bias)
        self.relu = nn.ReLU(inplace=True)
        self.se = _optional(attention, planes)
        self.downsample = downsample
        self.projection = projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.relu(self.bn1(x))
        shortcut = _preact_shortcut(x, preact, self.downsample, self.projection)
        out = self.conv1(preact)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.se is not None:
            out = self.se(out)
        return out + shortcut


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (ResNetV2): BN-ReLU-1×1, BN-ReLU-3×3 (strided), BN-ReLU-1×1."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        projection: bool = False,
        norm: NormFactory,
        attention: AttentionFactory | None = None,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.bn1 = norm(inplanes)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = norm(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = norm(planes)
        self.conv3 = conv1x1(planes, out_planes, bias=conv_bias)
        self.relu = nn.ReLU(inplace=True)
        self.se = _optional(attention, out_planes)
        self.downsample = downsample
        self.projection = projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.relu(self.bn1(x))
        shortcut = _preact_shortcut(x, preact, self.downsample, self.projection)
        out = self.conv1(preact)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.se is not None:
            out = self.se(out)
        return out + shortcut


def _preact_shortcut(
    x: torch.Tensor, preact: torch.Tensor, downsample: nn.Module | None, projection: bool
) -> torch.Tensor:
    if downsample is None:
        return x
    return downsample(preact if projection else x)
