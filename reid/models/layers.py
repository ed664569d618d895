"""Building blocks shared by the ResNet family: attention, mixed normalisation, non-local, pooling.

Module and parameter names follow the public checkpoints (IBN-Net, fast-reid) so their state dicts load
without renaming: ``se.fc.0``/``se.fc.2``, ``bn1.IN``/``bn1.BN``, ``NL_x.i.{g,theta,phi,W.0,W.1}``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

NormFactory = Callable[[int], nn.Module]
AttentionFactory = Callable[[int], nn.Module]


class SELayer(nn.Module):
    """Squeeze-and-excitation with bias-free Linear layers (IBN-Net / fast-reid form: ``fc.0``, ``fc.2``)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, int(channels / reduction))
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc(x.mean(dim=(2, 3)))
        return x * scale[:, :, None, None]


class SEConv(nn.Module):
    """Squeeze-and-excitation with 1×1 convolutions with bias (SENet / Cadene form: ``fc1``, ``fc2``)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * scale.sigmoid()


class IBN(nn.Module):
    """IBN-a normalisation: affine InstanceNorm on the first half of the channels, BatchNorm on the rest."""

    def __init__(self, channels: int, ratio: float = 0.5, eps: float = 1e-5) -> None:
        super().__init__()
        self.in_channels = int(channels * ratio)
        self.IN = nn.InstanceNorm2d(self.in_channels, affine=True, eps=eps)
        self.BN = nn.BatchNorm2d(channels - self.in_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.in_channels, x.shape[1] - self.in_channels], dim=1)
        return torch.cat((self.IN(a.contiguous()), self.BN(b.contiguous())), dim=1)


class NonLocal(nn.Module):
    """Embedded-Gaussian-free (dot-product, 1/N scaled) non-local block as used by fast-reid's SBS models.

    The output branch ends in a BatchNorm initialised to zero, so a fresh block is an identity.
    """

    def __init__(self, channels: int, inter_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.inter_channels = inter_channels
        self.g = nn.Conv2d(channels, inter_channels, kernel_size=1)
        self.theta = nn.Conv2d(channels, inter_channels, kernel_size=1)
        self.phi = nn.Conv2d(channels, inter_channels, kernel_size=1)
        self.W = nn.Sequential(
            nn.Conv2d(inter_channels, channels, kernel_size=1), nn.BatchNorm2d(channels, eps=eps)
        )
        self.reset_output()

    def reset_output(self) -> None:
        """Zero the output BN so a fresh unit is an identity."""
        norm = self.W[1]
        assert isinstance(norm, nn.BatchNorm2d)
        nn.init.zeros_(norm.weight)
        nn.init.zeros_(norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        g_x = self.g(x).flatten(2).transpose(1, 2)  # B, HW, C'
        theta_x = self.theta(x).flatten(2).transpose(1, 2)  # B, HW, C'
        phi_x = self.phi(x).flatten(2)  # B, C', HW
        attn = torch.matmul(theta_x, phi_x) / phi_x.shape[-1]
        y = torch.matmul(attn, g_x).transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return x + self.W(y)


class GeneralizedMeanPooling(nn.Module):
    """GeM pooling: (mean(clamp(x, eps)^p))^(1/p); ``p`` learnable or fixed (a buffer, still saved)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        self.eps = eps
        p_tensor = torch.ones(1) * p
        if learnable:
            self.p = nn.Parameter(p_tensor)
        else:
            self.register_buffer("p", p_tensor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(p), 1).pow(1.0 / p)
