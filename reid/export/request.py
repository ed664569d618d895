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

    def dynamic_shapes(self) -> tuple[dict[int, torch.export.Dim], ...] | None:
        """``torch.export``'s spec of a batch axis within the profile; ``None`` (static) for one size, which
        ``torch.export`` refuses to treat as a range."""
        if self.profile.min == self.profile.max:
            return None
        return ({0: torch.export.Dim("batch", min=self.profile.min, max=self.profile.max)},)
