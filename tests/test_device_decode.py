"""Decoding JPEGs on the model's device: the same pixels (within a grey level) and the same refusals as the
Pillow path. The decoder runs on the CPU here (TorchCodec's libjpeg-turbo); the nvJPEG test needs CUDA."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from reid.device_decode import DeviceJpeg, DeviceJpegDecoder
from reid.engine import EngineOptions
from reid.errors import ConfigError, ImageTooLarge, InvalidImage, UnsupportedImage
from reid.export.verify import synthetic_jpegs
from reid.preprocess import ImageSource, PreprocessConfig, Preprocessor, prepare_image
from tests.helpers import calibrated_extractor

pytest.importorskip("torchcodec")

CPU = torch.device("cpu")
CFG = PreprocessConfig()
ORIENTATION = 0x0112


def assert_close_pixels(a: object, b: object, *, worst: int = 4, mean: float = 0.5) -> None:
    """Two uint8 images within a few grey levels anywhere and well under one on average (the two
    resamplers round differently; Pillow's bicubic works in fixed point between its two passes)."""
    assert isinstance(a, torch.Tensor)
    assert isinstance(b, torch.Tensor)
    diff = (a.cpu().int() - b.cpu().int()).abs()
    assert int(diff.max()) <= worst, int(diff.max())
    assert float(diff.float().mean()) < mean, float(diff.float().mean())


def encode(image: Image.Image, *, exif_orientation: int | None = None, **save: object) -> bytes:
    buffer = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION] = exif_orientation
        save["exif"] = exif
    image.save(buffer, format="JPEG", quality=92, **save)
    return buffer.getvalue()


def photo(height: int, width: int, seed: int = 0) -> Image.Image:
    (data,) = synthetic_jpegs(1, (height, width), seed=seed)
    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.fixture(scope="module")
def decoder() -> DeviceJpegDecoder:
    return DeviceJpegDecoder(CFG, CPU)


def decode(decoder: DeviceJpegDecoder, data: bytes) -> torch.Tensor:
    (image,) = decoder.finish([decoder.plan(data, 0)])
    assert isinstance(image, torch.Tensor)
    return image


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(512, 200), (300, 150), (120, 48)], ids=["down", "slightly-down", "up"])
def test_pixels_match_pillow_within_a_grey_level(interpolation, size):
    cfg = PreprocessConfig(interpolation=interpolation)
    decoder = DeviceJpegDecoder(cfg, CPU)
    for data in synthetic_jpegs(3, size, seed=4):
        planned = decoder.plan(data, 0)
        assert isinstance(planned, DeviceJpeg)
        assert_close_pixels(decode(decoder, data), prepare_image(data, cfg))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotated_photos_stay_with_pillow(decoder, orientation):
    # A tall picture with a bright corner: any wrong turn or mirror moves the corner or the aspect.
    image = photo(400, 160)
    image.paste((255, 255, 255), (0, 0, 60, 90))
    data = encode(image, exif_orientation=orientation)
    planned = decoder.plan(data, 0)
    assert isinstance(planned, DeviceJpeg) == (orientation == 1)
    assert_close_pixels(decode(decoder, data), prepare_image(data, CFG))


def test_grey_jpegs_go_to_the_device_as_rgb(decoder):
    data = encode(photo(300, 120).convert("L"))
    assert isinstance(decoder.plan(data, 0), DeviceJpeg)
    assert_close_pixels(decode(decoder, data), prepare_image(data, CFG))


@pytest.mark.parametrize(
    "kind",
    ["png", "cmyk", "truncated", "progressive"],
)
def test_what_the_device_would_decode_differently_stays_with_pillow(decoder, kind):
    image = photo(300, 120)
    if kind == "png":
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
    elif kind == "cmyk":
        data = encode(image.convert("CMYK"))
    elif kind == "progressive":
        data = encode(image, progressive=True)
    else:
        data = encode(image)[:-600]
    if kind == "progressive":  # nvJPEG decodes progressive files too
        assert isinstance(decoder.plan(data, 0), DeviceJpeg)
        return
    if kind == "truncated":
        with pytest.raises(InvalidImage, match="image 0"):
            decoder.plan(data, 0)
        return
    planned = decoder.plan(data, 0)
    assert isinstance(planned, torch.Tensor)
    assert torch.equal(planned, prepare_image(data, CFG))


def test_refusals_are_those_of_the_cpu_path(decoder):
    with pytest.raises(UnsupportedImage, match="TIFF"):
        decoder.plan(b"II*\x00" + b"\x00" * 64, 3)
    with pytest.raises(InvalidImage, match="image 2: empty file"):
        decoder.plan(b"", 2)
    small = DeviceJpegDecoder(PreprocessConfig(max_pixels=1000), CPU)
    with pytest.raises(ImageTooLarge, match="exceeds the limit"):
        small.plan(encode(photo(100, 40)), 0)


def without_scan(data: bytes) -> bytes:
    """Headers and the end marker intact, the scan gone: it passes planning, and only decoding fails (the
    batched device decode raises for the whole batch; Pillow for this image alone)."""
    return data[: data.index(b"\xff\xda")] + b"\xff\xd9"


def test_a_batch_the_device_refuses_falls_back_to_pillow_per_image():
    told: list[tuple[str, int]] = []
    decoder = DeviceJpegDecoder(CFG, CPU, observe=lambda where, n: told.append((where, n)))
    good = synthetic_jpegs(3, (300, 120), seed=7)
    sources = [good[1], without_scan(good[0]), good[2]]
    planned = [decoder.plan(data, i) for i, data in enumerate(sources)]
    assert all(isinstance(p, DeviceJpeg) for p in planned)
    results = decoder.finish(planned)
    assert told == [("pillow_fallback", 3)]
    with pytest.raises(InvalidImage) as refused:
        prepare_image(sources[1], CFG, index=1)
    assert isinstance(results[1], InvalidImage)
    assert str(results[1]) == str(refused.value)
    for i in (0, 2):
        assert_close_pixels(results[i], prepare_image(sources[i], CFG, index=i))
    decoder.finish([decoder.plan(good[1], 0), decoder.plan(encode(photo(200, 100), exif_orientation=6), 1)])
    assert told[1:] == [("device", 1), ("pillow", 1)]


def test_preprocessor_keeps_order_and_errors_with_a_device_decoder(tmp_path):
    jpegs = synthetic_jpegs(2, (300, 120), seed=9)
    png = tmp_path / "a.png"
    photo(200, 100).save(png)
    sources: list[ImageSource] = [jpegs[0], str(png), b"not an image at all", jpegs[1]]
    with (
        Preprocessor(CFG, workers=2) as cpu,
        Preprocessor(CFG, workers=2, device_decoder=DeviceJpegDecoder(CFG, CPU)) as device,
    ):
        expected = cpu.prepare_many(sources)
        got = device.prepare_many(sources)
        with pytest.raises(InvalidImage, match="image 2"):
            device.prepare_batch(sources)
        batch = device.prepare_batch([s for i, s in enumerate(sources) if i != 2])
    assert isinstance(got[2], InvalidImage)
    assert str(got[2]) == str(expected[2])
    for i in (0, 1, 3):
        assert_close_pixels(got[i], expected[i])
    assert batch.shape == (3, 3, CFG.height, CFG.width)
    assert batch.dtype == torch.uint8


class BrokenDecoder(DeviceJpegDecoder):
    def _device_decode(self, data: list[bytes]) -> list[torch.Tensor]:
        raise RuntimeError("libnvjpeg.so.13: cannot open shared object file")


def test_a_decoder_that_cannot_work_here_is_refused_at_start():
    with pytest.raises(ConfigError, match="does not work here: libnvjpeg"):
        BrokenDecoder(CFG, CPU)


def test_preprocessor_refuses_a_decoder_for_other_settings():
    with pytest.raises(ConfigError, match="configuration"):
        Preprocessor(CFG, device_decoder=DeviceJpegDecoder(PreprocessConfig(height=128, width=64), CPU))


def test_embeddings_match_the_pillow_path_relative_to_the_distance_between_people():
    extractor = calibrated_extractor()
    decoder = DeviceJpegDecoder(extractor.preprocess, CPU)
    jpegs = synthetic_jpegs(8, (256, 112), seed=11)
    with Preprocessor(extractor.preprocess, device_decoder=decoder) as device:
        ours = extractor.embed_batch(device.prepare_batch(jpegs))
    theirs = extractor.embed(jpegs)
    between = np.median(
        [np.linalg.norm(theirs[i] - theirs[j]) for i in range(len(jpegs)) for j in range(i + 1, len(jpegs))]
    )
    worst = float(np.linalg.norm(ours - theirs, axis=1).max())
    assert worst < 0.05 * between, (worst, between)
    extractor.close()


def test_gpu_decode_needs_a_gpu():
    with pytest.raises(ConfigError, match="gpu_decode"):
        calibrated_extractor(options=EngineOptions(device="cpu", gpu_decode=True))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvjpeg_matches_pillow():
    decoder = DeviceJpegDecoder(CFG, torch.device("cuda"))
    jpegs = synthetic_jpegs(16, (512, 200), seed=5)
    with Preprocessor(CFG, workers=4, device_decoder=decoder) as device, Preprocessor(CFG) as cpu:
        ours, theirs = device.prepare_batch(jpegs), cpu.prepare_batch(jpegs)
    assert ours.device.type == "cuda"
    # nvJPEG's IDCT and chroma upsampling differ slightly from libjpeg-turbo's.
    assert_close_pixels(ours, theirs, worst=10, mean=1.0)
