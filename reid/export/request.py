"""What every format's writer receives besides the model and the destination."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reid.runtimes.base import BatchProfile, Precision


@dataclass(frozen=True)
class WriteRequest:
    """``example``: a normalised float32 batch to trace with; ``calibration``: normalised float32 images
    for int8 post-training quantisation (``None`` for other precisions)."""

    example: torch.Tensor
    profile: BatchProfile
    dtype: Precision
    calibration: torch.Tensor | None = None
