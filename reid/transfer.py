"""Host → GPU input copies that overlap the model: reused pinned buffers and a side stream.

A pageable tensor's ``.to("cuda")`` is a synchronous staging copy. :class:`PinnedUploader` keeps two
pinned host buffers (grown on demand, never reallocated per batch) and issues each copy on its own CUDA
stream, so the engine can start copying chunk n+1 while the model computes chunk n; the compute stream
waits only for the copy it consumes.
"""

from __future__ import annotations

import torch

SLOTS = 2  # double buffering: one buffer being copied from while the other's chunk is computed


class PinnedUploader:
    def __init__(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError(f"pinned uploads are for CUDA devices, not {device}")
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self._buffers: list[torch.Tensor | None] = [None] * SLOTS
        self._copied: list[torch.cuda.Event | None] = [None] * SLOTS
        self._next = 0

    def upload(self, chunk: torch.Tensor) -> torch.Tensor:
        """Start copying ``chunk`` (a CPU tensor) to the device and return the device tensor; work queued
        afterwards on the current stream sees the copied data."""
        slot, self._next = self._next, (self._next + 1) % SLOTS
        copied = self._copied[slot]
        if copied is not None:
            copied.synchronize()  # the last copy out of this buffer has finished: it may be overwritten
        buffer = self._buffers[slot]
        if buffer is None or buffer.numel() < chunk.numel():
            buffer = torch.empty(chunk.numel(), dtype=chunk.dtype, pin_memory=True)
            self._buffers[slot] = buffer
        host = buffer[: chunk.numel()].view(chunk.shape)
        host.copy_(chunk)
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            on_device = host.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record(self.stream)
        self._copied[slot] = event
        compute.wait_event(event)
        # The tensor was allocated on the side stream but is used on the compute stream.
        on_device.record_stream(compute)
        return on_device
