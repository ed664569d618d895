"""Image preprocessing: untrusted bytes or paths → fixed-size uint8 tensors → normalised model input.

The pipeline is split where the work is cheapest: decoding, orientation, colour conversion and resizing
run on CPU worker threads (Pillow releases the GIL in its decoders and resamplers) and produce small
``uint8`` tensors, so host→device copies are 4× smaller than float32; normalisation is a single fused
multiply-add on whatever device the batch lives on.

Resizing uses ``PIL.Image.resize((w, h), filter)``, which is exactly what torchvision's
``Resize((h, w), interpolation)`` does for PIL input, so outputs match the training frameworks.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from reid.errors import ConfigError, ImageTooLarge, InvalidImage, ReidError, UnsupportedImage

if TYPE_CHECKING:
    from reid.device_decode import DeviceJpeg, DeviceJpegDecoder, Planned

logger = logging.getLogger(__name__)

ImageSource: TypeAlias = bytes | str | os.PathLike[str]
Interpolation: TypeAlias = Literal["bilinear", "bicubic"]
PixelRange: TypeAlias = Literal[1, 255]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MAX_PIXELS = 40_000_000
# Pillow's JPEG reader also opens the multi-picture JPEGs (format "MPO") that many phones write.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
_WHITE = (255, 255, 255)
# Signatures of common formats we refuse, so the caller hears "TIFF is not accepted" rather than
# "corrupt file". Only Pillow's parsers for accepted formats ever see the bytes.
_REFUSED_SIGNATURES = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
)
_HEADER_BYTES = 16


@dataclass(frozen=True)
class PreprocessConfig:
    """How a checkpoint expects its input: size, interpolation and normalisation.

    ``mean``/``std`` are stored in the units the training framework used, given by ``pixel_range``:
    ``1`` for torchvision-style 0–1 tensors, ``255`` for fast-reid's raw 0–255 pixels. Both conventions
    reduce to the same per-channel affine map of the uint8 pixel (see :meth:`affine`).
    ``max_pixels`` bounds the decoded image (width × height) and is checked before pixels are decoded.
    """

    height: int = 256
    width: int = 128
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pixel_range: PixelRange = 1
    interpolation: Interpolation = "bilinear"
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        for name in ("height", "width", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.pixel_range not in (1, 255):
            raise ConfigError(f"pixel_range must be 1 or 255, got {self.pixel_range!r}")
        if self.interpolation not in _RESAMPLE:
            raise ConfigError(f"interpolation must be one of {sorted(_RESAMPLE)}, got {self.interpolation!r}")
        # Lists from JSON become tuples so the config stays hashable and immutable.
        object.__setattr__(self, "mean", _three_floats("mean", self.mean))
        object.__setattr__(self, "std", _three_floats("std", self.std))
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std must be positive, got {self.std}")
        if any(not 0 <= m <= self.pixel_range for m in self.mean):
            raise ConfigError(f"mean {self.mean} lies outside the pixel range 0–{self.pixel_range}")
        if self.pixel_range == 255 and max(self.mean + self.std) <= 1:
            raise ConfigError(
                f"mean {self.mean} and std {self.std} look like 0–1 units but pixel_range is 255"
            )

    @classmethod
    def torchvision(
        cls, *, height: int = 256, width: int = 128, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> PreprocessConfig:
        """Bilinear resize, 0–1 pixels, ImageNet mean/std: torchvision, torchreid, strong-baseline."""
        return cls(height=height, width=width, max_pixels=max_pixels)

    @classmethod
    def fastreid(
        cls, *, height: int = 256, width: int = 128, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> PreprocessConfig:
        """fast-reid: bicubic ``Resize``, 0–255 pixels, ``PIXEL_MEAN/STD`` = ImageNet × 255."""
        return cls(
            height=height,
            width=width,
            mean=_times_255(IMAGENET_MEAN),
            std=_times_255(IMAGENET_STD),
            pixel_range=255,
            interpolation="bicubic",
            max_pixels=max_pixels,
        )

    def affine(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Per-channel ``(scale, shift)`` with ``normalised = uint8_pixel * scale + shift``.

        From ``(p * pixel_range / 255 - mean) / std``; exposed so a model may fold it into its first conv.
        """
        scale = tuple(self.pixel_range / 255.0 / s for s in self.std)
        shift = tuple(-m / s for m, s in zip(self.mean, self.std, strict=True))
        return (scale[0], scale[1], scale[2]), (shift[0], shift[1], shift[2])

    def contract(self) -> dict[str, Any]:
        """What a client embedding elsewhere must reproduce: crops are decoded to upright RGB and resized
        straight to ``height``×``width`` (no padding, aspect ratio not kept), then normalised."""
        return {
            "input_size": [self.height, self.width],
            "resize": "stretch",
            "interpolation": self.interpolation,
            "colour_order": "RGB",
            "pixel_range": self.pixel_range,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for a checkpoint manifest."""
        record = asdict(self)
        record["mean"], record["std"] = list(self.mean), list(self.std)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are refused."""
        unknown = set(record) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown preprocessing keys: {sorted(unknown)}")
        return cls(**record)


def _three_floats(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    try:
        a, b, c = (float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be three numbers (R, G, B), got {values!r}") from exc
    if not all(np.isfinite((a, b, c))):
        raise ConfigError(f"{name} must be finite, got {values!r}")
    return a, b, c


def _times_255(values: tuple[float, float, float]) -> tuple[float, float, float]:
    return values[0] * 255, values[1] * 255, values[2] * 255


@contextmanager
def binary_stream(src: ImageSource, index: int | None) -> Iterator[IO[bytes]]:
    """``src`` (bytes or a file path) as a stream; an unreadable path raises :class:`InvalidImage`."""
    if isinstance(src, bytes | bytearray | memoryview):
        yield io.BytesIO(src)
        return
    if not isinstance(src, str | os.PathLike):
        raise TypeError(f"expected bytes or a path, got {type(src).__name__}")
    try:
        stream = open(src, "rb")  # noqa: SIM115 - closed by the with-block below, after the yield
    except OSError as exc:
        raise InvalidImage(f"cannot read {os.fspath(src)!r}: {exc.strerror}", index=index) from exc
    with stream:
        yield stream


def _identify_refused(header: bytes) -> str | None:
    for signature, name in _REFUSED_SIGNATURES:
        if header.startswith(signature):
            return name
    if header[4:8] == b"ftyp":  # ISO base media: HEIC/HEIF/AVIF photos
        return "HEIF/AVIF"
    return None


def open_header(stream: IO[bytes], max_pixels: int, index: int | None) -> Image.Image:
    """Read the header only; refuse what is not an accepted format or is too large to decode."""
    header = stream.read(_HEADER_BYTES)
    stream.seek(0)
    if not header:
        raise InvalidImage("empty file", index=index)
    try:
        image = Image.open(stream, formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's own hard limit, hit while reading the header
        raise ImageTooLarge(str(exc), index=index) from exc
    except UnidentifiedImageError as exc:
        refused = _identify_refused(header)
        if refused is not None:
            raise UnsupportedImage(
                f"{refused} is not accepted; send one of {', '.join(ACCEPTED_FORMATS)}", index=index
            ) from exc
        raise InvalidImage("not a recognised image (corrupt or unknown format)", index=index) from exc
    except Exception as exc:  # Pillow's header parsers raise assorted types on malformed input
        raise InvalidImage(f"unreadable image header: {exc}", index=index) from exc
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{width}×{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}", index=index
        )
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I;16"):
        # Pillow's convert() clips 16-bit values to 255; keep the high byte instead, as Pillow itself
        # does when it reads 16-bit RGB(A) PNGs, so gray and colour 16-bit files agree.
        high = (np.asarray(image) >> 8).astype(np.uint8)
        return Image.fromarray(high).convert("RGB")
    if image.has_transparency_data:  # RGBA, LA, PA, and P/L/RGB with a transparent colour
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode == "RGB":
        return image
    # L, 1, P, CMYK: Pillow already undid Adobe's inverted CMYK while decoding the JPEG.
    return image.convert("RGB")


def decode_image(src: ImageSource, *, max_pixels: int, index: int | None = None) -> Image.Image:
    """Decode an accepted image to an upright RGB ``PIL.Image`` (first frame of animations).

    Raises :class:`ImageTooLarge` before any pixel is decoded when ``width × height > max_pixels``
    (Pillow's own decompression-bomb limit, about 179 Mpx, applies too), :class:`UnsupportedImage`
    for other formats and :class:`InvalidImage` for empty, corrupt, truncated or unreadable input.
    With ``index`` set, error messages name the item ("image 3: ...").
    """
    with binary_stream(src, index) as stream:
        image = open_header(stream, max_pixels, index)
        try:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return _to_rgb(image)
        except Exception as exc:  # corrupt data surfaces as OSError, SyntaxError, ValueError, ...
            raise InvalidImage(f"cannot decode {image.format} image: {exc}", index=index) from exc


def prepare_image(src: ImageSource, cfg: PreprocessConfig, *, index: int | None = None) -> torch.Tensor:
    """Decode and resize one image to a contiguous ``uint8`` tensor of shape (3, height, width)."""
    image = decode_image(src, max_pixels=cfg.max_pixels, index=index)
    resized = image.resize((cfg.width, cfg.height), _RESAMPLE[cfg.interpolation])
    return torch.from_numpy(np.ascontiguousarray(np.asarray(resized).transpose(2, 0, 1)))


@lru_cache(maxsize=32)
def _affine_tensors(cfg: PreprocessConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    scale, shift = cfg.affine()
    as_tensor = torch.tensor((scale, shift), dtype=torch.float32, device=device).view(2, 1, 3, 1, 1)
    return as_tensor[0], as_tensor[1]


def normalize(
    batch: torch.Tensor,
    cfg: PreprocessConfig,
    *,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """Map a ``uint8`` (N, 3, H, W) batch to normalised model input on the batch's device.

    One kernel reads the bytes, applies ``p * scale + shift`` in float32 and writes ``dtype`` in the
    requested memory format, so bf16/fp16 outputs are rounded once, from float32.
    """
    if batch.dtype != torch.uint8:
        raise TypeError(f"normalize expects a uint8 batch, got {batch.dtype}")
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"normalize expects shape (N, 3, H, W), got {tuple(batch.shape)}")
    scale, shift = _affine_tensors(cfg, batch.device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(batch.shape, dtype=dtype, device=batch.device, memory_format=memory_format)
    return torch.addcmul(shift, batch, scale, out=out)


def stack_prepared(items: Sequence[torch.Tensor | ReidError], cfg: PreprocessConfig) -> torch.Tensor:
    """Prepared images as one uint8 (N, 3, H, W) batch; raises the first error among them."""
    tensors = []
    for item in items:
        if isinstance(item, ReidError):
            raise item
        tensors.append(item)
    if not tensors:
        return torch.empty((0, 3, cfg.height, cfg.width), dtype=torch.uint8)
    return torch.stack(tensors)


class Preprocessor:
    """Decodes and resizes images for one checkpoint on a pool of worker threads.

    ``prepare_batch`` is all-or-nothing (requests); ``prepare_many`` keeps going past bad files (jobs).
    With a ``device_decoder`` the threads only read and check the files, and JPEGs are decoded and resized
    on its device (see :mod:`reid.device_decode`); the tensors then live there.
    """

    def __init__(
        self,
        cfg: PreprocessConfig | None = None,
        *,
        workers: int | None = None,
        device_decoder: DeviceJpegDecoder | None = None,
    ) -> None:
        self.cfg = cfg if cfg is not None else PreprocessConfig()
        self.workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        if self.workers <= 0:
            raise ConfigError(f"workers must be positive, got {self.workers}")
        if device_decoder is not None and device_decoder.cfg != self.cfg:
            raise ConfigError("the device decoder must use the preprocessor's configuration")
        self.device_decoder = device_decoder
        Image.init()  # register every Pillow plugin now rather than racing to do it in the first workers
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="reid-decode")
        logger.debug("preprocessor: %s, %d decode threads", self.cfg, self.workers)

    def prepare(self, src: ImageSource, index: int | None = None) -> torch.Tensor:
        """One image, in the calling thread: ``uint8`` (3, H, W)."""
        return prepare_image(src, self.cfg, index=index)

    def prepare_batch(self, sources: Sequence[ImageSource]) -> torch.Tensor:
        """All images as one ``uint8`` (N, 3, H, W) batch, in input order.

        Raises the error of the lowest-indexed bad image (its message names the index) and cancels the
        work not yet started.
        """
        futures = self._submit(sources)
        try:
            planned = [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return stack_prepared(self._finish(planned), self.cfg)

    def prepare_many(self, sources: Sequence[ImageSource]) -> list[torch.Tensor | ReidError]:
        """Each image's (3, H, W) tensor, or the :class:`ReidError` it raised, in input order."""
        planned: list[Planned] = []
        for future in self._submit(sources):
            try:
                planned.append(future.result())
            except ReidError as exc:
                planned.append(exc)
        return self._finish(planned)

    def _submit(self, sources: Sequence[ImageSource]) -> list[Future[torch.Tensor | DeviceJpeg]]:
        if self.device_decoder is not None:
            plan = self.device_decoder.plan
            return [self._pool.submit(plan, src, i) for i, src in enumerate(sources)]
        return [self._pool.submit(prepare_image, src, self.cfg, index=i) for i, src in enumerate(sources)]

    def _finish(self, planned: Sequence[Planned]) -> list[torch.Tensor | ReidError]:
        if self.device_decoder is None:
            return [item for item in planned if isinstance(item, torch.Tensor | ReidError)]
        return self.device_decoder.finish(planned)

    def close(self) -> None:
        """Stop the worker threads; queued work is cancelled."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Preprocessor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
