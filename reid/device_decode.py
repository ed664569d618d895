"""JPEG decoding and resizing on the model's GPU (nvJPEG through TorchCodec), for hosts whose CPU cores
cannot decode as fast as the GPU embeds.

The work is split as in :mod:`reid.preprocess`: a worker thread reads each image's bytes and header
(:meth:`DeviceJpegDecoder.plan`, with the same refusals and pixel limit as the CPU path) and decides where
it is decoded. A plain JPEG (baseline or progressive, RGB or grey, upright, ending in its end-of-image
marker) is left to the device; everything else (PNG, CMYK or multi-picture JPEGs, EXIF-rotated photos,
truncated files) is decoded by Pillow on the thread, as it would be without a GPU.
:meth:`DeviceJpegDecoder.finish` then decodes the device's share in one batched call and resizes each
image with an antialiased filter that matches Pillow's to within a few grey levels. A batch nvJPEG
refuses is decoded by Pillow instead, so a bad file gets the same error it gets on the CPU path.

The decoder also runs on a CPU device (TorchCodec's libjpeg-turbo), which is how the tests check it.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
import torch.nn.functional as F
from PIL import ExifTags, Image

from reid.errors import ConfigError, ReidError
from reid.preprocess import ImageSource, PreprocessConfig, binary_stream, open_header, prepare_image

logger = logging.getLogger(__name__)

_END_OF_IMAGE = b"\xff\xd9"
_DEVICE_MODES = ("RGB", "L")  # what nvJPEG converts to RGB as Pillow does; CMYK/YCCK stay with Pillow


@dataclass(frozen=True, eq=False)
class DeviceJpeg:
    """A JPEG left to the device: its bytes and its position in the request."""

    data: bytes
    index: int | None


Planned: TypeAlias = torch.Tensor | DeviceJpeg | ReidError
# Told how many images each finished batch sent where: "device", "pillow" (planned so: PNG, EXIF-rotated...)
# or "pillow_fallback" (the device refused their batch). The service counts them in a metric.
DecodeObserver: TypeAlias = Callable[[str, int], None]


def import_decode_jpeg() -> Any:
    try:
        from torchcodec.decoders import decode_jpeg
    except ImportError:
        raise ConfigError("GPU decoding needs TorchCodec: pip install 'reid[gpu]'") from None
    return decode_jpeg


def resize(image: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """``image`` (3, H, W) uint8 resized to the model's input with the checkpoint's filter. Antialiased
    like Pillow's resampling (bicubic then uses Pillow's a = -0.5), rounded back to uint8."""
    scaled = F.interpolate(
        image.unsqueeze(0).float(),
        size=(cfg.height, cfg.width),
        mode=cfg.interpolation,
        align_corners=False,
        antialias=True,
    )
    return scaled.squeeze(0).round_().clamp_(0, 255).to(torch.uint8)


class DeviceJpegDecoder:
    """Decodes the JPEGs of a batch on ``device`` (see the module docstring). Thread-safe: planning runs on
    any thread; the batched decodes are serialised."""

    def __init__(
        self, cfg: PreprocessConfig, device: torch.device, *, observe: DecodeObserver | None = None
    ) -> None:
        self.cfg = cfg
        self.device = device
        self._observe = observe
        self._decode_jpeg = import_decode_jpeg()
        self._lock = threading.Lock()
        self._warned = False
        self._check()

    def _check(self) -> None:
        """Decode one small JPEG now: a decoder that cannot work here (no nvJPEG library, no device) is a
        configuration error at start, not a silent fall-back to Pillow on every batch."""
        buffer = io.BytesIO()
        Image.new("RGB", (16, 32), (200, 100, 50)).save(buffer, format="JPEG")
        try:
            (image,) = self._device_decode([buffer.getvalue()])
        except (RuntimeError, OSError) as exc:
            raise ConfigError(f"JPEG decoding on {self.device} does not work here: {exc}") from exc
        if tuple(image.shape) != (3, 32, 16):
            raise ConfigError(f"JPEG decoding on {self.device} returned {tuple(image.shape)} for (3, 32, 16)")

    def plan(self, src: ImageSource, index: int | None = None) -> torch.Tensor | DeviceJpeg:
        """On a worker thread: a :class:`DeviceJpeg`, or the image decoded by Pillow when the device would
        not decode it as Pillow does. Raises what the CPU path raises for refused or unreadable input."""
        with binary_stream(src, index) as stream:
            with open_header(stream, self.cfg.max_pixels, index) as image:
                # An EXIF-rotated photo stays with Pillow: decoders differ on whether they turn it.
                suitable = (
                    image.format == "JPEG"
                    and image.mode in _DEVICE_MODES
                    and image.getexif().get(ExifTags.Base.Orientation, 1) == 1
                )
            stream.seek(0)
            data = stream.read()
        if not suitable or not data.rstrip(b"\x00").endswith(_END_OF_IMAGE):
            return prepare_image(data, self.cfg, index=index)
        return DeviceJpeg(data, index)

    def finish(self, planned: Sequence[Planned]) -> list[torch.Tensor | ReidError]:
        """Every planned image as a uint8 (3, H, W) tensor on the device, or its error, in order."""
        decoded = iter(self._decode([item for item in planned if isinstance(item, DeviceJpeg)]))
        self._tell("pillow", sum(isinstance(item, torch.Tensor) for item in planned))
        return [
            next(decoded)
            if isinstance(item, DeviceJpeg)
            else item.to(self.device)
            if isinstance(item, torch.Tensor)
            else item
            for item in planned
        ]

    def _decode(self, jobs: list[DeviceJpeg]) -> list[torch.Tensor | ReidError]:
        if not jobs:
            return []
        try:
            with self._lock:
                decoded = self._device_decode([job.data for job in jobs])
        except RuntimeError as exc:
            # One bad image fails the whole batched call: Pillow sorts out which, with the CPU path's error.
            if not self._warned:
                logger.warning("%s could not decode a batch (%s); decoding it with Pillow", self.device, exc)
                self._warned = True
            self._tell("pillow_fallback", len(jobs))
            return [self._on_cpu(job) for job in jobs]
        self._tell("device", len(jobs))
        return [resize(image, self.cfg) for image in decoded]

    def _tell(self, decoder: str, images: int) -> None:
        if self._observe is not None and images:
            self._observe(decoder, images)

    def _device_decode(self, data: list[bytes]) -> list[torch.Tensor]:
        if self.device.type != "cuda":
            images: list[torch.Tensor] = self._decode_jpeg(data, mode="RGB", device=self.device)
            return images
        # nvJPEG works on the current stream: let queued work finish first (pytorch/vision#9606) and the
        # decode itself before the images are used.
        with torch.cuda.device(self.device):
            torch.cuda.current_stream().synchronize()
            images = self._decode_jpeg(data, mode="RGB", device=self.device)
            torch.cuda.current_stream().synchronize()
        return images

    def _on_cpu(self, job: DeviceJpeg) -> torch.Tensor | ReidError:
        try:
            return prepare_image(job.data, self.cfg, index=job.index).to(self.device)
        except ReidError as exc:
            return exc
