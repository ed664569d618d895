"""Tests for reid.preprocess: every accepted format and mode, orientation, bombs, errors, framework parity.

All images are generated in memory; references are hand-worked values, numpy formulas or torchvision.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageSequence
from torchvision import transforms as T

from reid.errors import ConfigError, ImageTooLarge, InvalidImage, UnsupportedImage
from reid.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessConfig,
    Preprocessor,
    decode_image,
    normalize,
    prepare_image,
)

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)
LIMIT = 1_000_000
ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes] | None) -> bytes:
    """A PNG written by hand: for bit depths Pillow cannot write, and for headers with no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header)
    if rows is not None:
        chunks += png_chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + row for row in rows)))
    return b"\x89PNG\r\n\x1a\n" + chunks + png_chunk(b"IEND", b"")


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def preprocessor():
    with Preprocessor(PreprocessConfig(), workers=4) as pre:
        yield pre


# --- formats -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "tolerance"),
    [
        ("JPEG", {"quality": 95}, 3),
        ("MPO", {"quality": 95}, 3),
        ("PNG", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("BMP", {}, 0),
        ("GIF", {}, 0),
    ],
)
def test_each_format_decodes_to_rgb(fmt, params, tolerance):
    colour = (200, 40, 90)
    data = encode(Image.new("RGB", (16, 8), colour), fmt, **params)
    decoded = decode_image(data, max_pixels=LIMIT)
    assert decoded.size == (16, 8)
    assert np.abs(pixels(decoded) - colour).max() <= tolerance


@pytest.mark.parametrize(("fmt", "params"), [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})])
def test_animation_keeps_first_frame(fmt, params):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **params)
    assert sum(1 for _ in ImageSequence.Iterator(Image.open(io.BytesIO(data)))) == 3
    assert np.all(pixels(decode_image(data, max_pixels=LIMIT)) == RED)


# --- modes -------------------------------------------------------------------------------------------------


def composite_on_white(rgb: tuple[int, int, int], alpha: int) -> np.ndarray:
    return np.round(np.array(rgb) * alpha / 255 + 255 * (1 - alpha / 255))


def test_rgba_composited_on_white():
    rgba = [(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 255, 128), (10, 200, 30, 64)]
    image = Image.new("RGBA", (4, 1))
    image.putdata(rgba)
    for fmt, params in [("PNG", {}), ("WEBP", {"lossless": True, "exact": True})]:
        decoded = pixels(decode_image(encode(image, fmt, **params), max_pixels=LIMIT))[0]
        assert tuple(decoded[0]) == WHITE  # fully transparent red
        assert tuple(decoded[1]) == RED
        for got, (r, g, b, a) in zip(decoded[2:], rgba[2:], strict=True):
            assert np.abs(got - composite_on_white((r, g, b), a)).max() <= 1


def test_la_composited_on_white():
    image = Image.new("LA", (3, 1))
    image.putdata([(200, 0), (200, 255), (0, 128)])
    decoded = pixels(decode_image(encode(image, "PNG"), max_pixels=LIMIT))[0]
    assert tuple(decoded[0]) == WHITE
    assert tuple(decoded[1]) == (200, 200, 200)
    assert np.abs(decoded[2] - composite_on_white((0, 0, 0), 128)).max() <= 1


def palette_image(transparent_index: int | None) -> Image.Image:
    image = Image.new("P", (3, 1))
    image.putpalette([*RED, *GREEN, *BLUE] + [0] * (256 - 3) * 3)
    image.putdata([0, 1, 2])
    if transparent_index is not None:
        image.info["transparency"] = transparent_index
    return image


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_palette(fmt):
    decoded = pixels(decode_image(encode(palette_image(None), fmt), max_pixels=LIMIT))[0]
    assert [tuple(p) for p in decoded] == [RED, GREEN, BLUE]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_white(fmt):
    image = palette_image(transparent_index=1)
    decoded = pixels(decode_image(encode(image, fmt, transparency=1), max_pixels=LIMIT))[0]
    assert [tuple(p) for p in decoded] == [RED, WHITE, BLUE]


def test_rgb_with_transparent_colour_key():
    image = Image.new("RGB", (2, 1))
    image.putdata([RED, GREEN])
    decoded = pixels(decode_image(encode(image, "PNG", transparency=GREEN), max_pixels=LIMIT))[0]
    assert [tuple(p) for p in decoded] == [RED, WHITE]


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "JPEG"])
def test_grayscale(fmt):
    image = Image.new("L", (16, 8), 77)
    decoded = pixels(decode_image(encode(image, fmt), max_pixels=LIMIT))
    assert np.abs(decoded - 77).max() <= (1 if fmt == "JPEG" else 0)


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_bilevel(fmt):
    image = Image.new("1", (2, 1))
    image.putdata([0, 1])
    decoded = pixels(decode_image(encode(image, fmt), max_pixels=LIMIT))[0]
    assert [tuple(p) for p in decoded] == [BLACK, WHITE]


def test_cmyk_jpeg():
    cmyk = [(0, 255, 255, 0), (0, 0, 0, 255), (0, 0, 0, 0), (255, 0, 255, 0)]
    image = Image.new("CMYK", (32, 8))
    for i, colour in enumerate(cmyk):  # 8×8 blocks keep JPEG's chroma error small
        image.paste(colour, (8 * i, 0, 8 * i + 8, 8))
    data = encode(image, "JPEG", quality=100)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    decoded = pixels(decode_image(data, max_pixels=LIMIT))
    for i, expected in enumerate([RED, BLACK, WHITE, GREEN]):
        assert np.abs(decoded[4, 8 * i + 4] - expected).max() <= 3


def test_16bit_gray_png_scales_to_8bit():
    values = [65535, 32768, 256, 255, 0]
    image = Image.new("I;16", (len(values), 1))
    image.putdata(values)
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    decoded = pixels(decode_image(data, max_pixels=LIMIT))[0]
    assert decoded[:, 0].tolist() == [255, 128, 1, 0, 0]
    assert np.all(decoded == decoded[:, :1])


def test_16bit_rgb_png_agrees_with_16bit_gray():
    row = struct.pack(">6H", 0xFFFF, 0x8000, 0x00FF, 0x0100, 0x1234, 0xABCD)
    decoded = pixels(decode_image(raw_png(2, 1, 16, 2, [row]), max_pixels=LIMIT))[0]
    assert decoded.tolist() == [[255, 128, 0], [1, 0x12, 0xAB]]


# --- orientation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "expected_rows"),
    [
        (1, [[RED, BLUE]]),
        (3, [[BLUE, RED]]),  # rotated 180°
        (6, [[RED], [BLUE]]),  # stored rotated 90° counter-clockwise: display turns it clockwise
        (8, [[BLUE], [RED]]),
    ],
)
def test_exif_orientation(orientation, expected_rows):
    image = Image.new("RGB", (2, 1))
    image.putdata([RED, BLUE])
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    decoded = decode_image(encode(image, "PNG", exif=exif), max_pixels=LIMIT)
    assert pixels(decoded).tolist() == [[list(p) for p in row] for row in expected_rows]


def test_exif_orientation_jpeg_reaches_the_tensor():
    image = Image.new("RGB", (64, 32), RED)
    image.paste(BLUE, (32, 0, 64, 32))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    data = encode(image, "JPEG", quality=95, exif=exif)
    assert decode_image(data, max_pixels=LIMIT).size == (32, 64)
    tensor = prepare_image(data, PreprocessConfig()).int()
    assert tensor.shape == (3, 256, 128)
    assert (tensor[:, 20, 64] - torch.tensor(RED)).abs().max() <= 4  # top half red
    assert (tensor[:, 236, 64] - torch.tensor(BLUE)).abs().max() <= 4  # bottom half blue


# --- sizes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [PreprocessConfig(), PreprocessConfig.fastreid()])
def test_one_pixel_image(cfg):
    tensor = prepare_image(encode(Image.new("RGB", (1, 1), (12, 34, 56)), "PNG"), cfg)
    assert tensor.dtype == torch.uint8
    assert tensor.shape == (3, 256, 128)
    assert tensor.is_contiguous()
    expected = torch.tensor([12, 34, 56], dtype=torch.uint8).view(3, 1, 1).expand(3, 256, 128)
    assert torch.equal(tensor, expected)


def test_max_pixels_boundary():
    data = encode(Image.new("RGB", (64, 64)), "PNG")
    assert decode_image(data, max_pixels=64 * 64).size == (64, 64)
    with pytest.raises(ImageTooLarge, match="64×64 = 4,096 pixels exceeds the limit of 4,095"):
        decode_image(data, max_pixels=64 * 64 - 1)
    with pytest.raises(ImageTooLarge):
        prepare_image(data, PreprocessConfig(max_pixels=100))


@pytest.mark.parametrize(("width", "height"), [(10_000, 5_000), (50_000, 50_000)])
def test_bomb_refused_before_decoding(width, height):
    # A header with no pixel data: decoding it would fail as truncated (InvalidImage), so ImageTooLarge
    # proves the refusal came from the header alone. 10000×5000 trips our limit (40 Mpx), 50000×50000
    # Pillow's own hard limit.
    header_only = raw_png(width, height, 8, 2, rows=None)
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(header_only, max_pixels=PreprocessConfig().max_pixels, index=7)
    assert time.perf_counter() - start < 1.0
    assert str(caught.value).startswith("image 7: ")
    assert caught.value.code == "image_too_large"


def test_real_deflate_bomb_is_never_decoded(monkeypatch):
    # 9000×5000 black gray pixels compress to ~45 kB but would take 45 MB decoded (135 MB as RGB).
    width, height = 9_000, 5_000
    bomb = raw_png(width, height, 8, 0, [bytes(width)] * height)
    assert len(bomb) < 100_000
    loaded_sizes = []
    real_load = ImageFile.ImageFile.load

    def spy_load(image):
        loaded_sizes.append(image.size)
        return real_load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy_load)
    with pytest.raises(ImageTooLarge, match="9000×5000"):
        decode_image(bomb, max_pixels=40_000_000)
    assert loaded_sizes == []
    decode_image(encode(Image.new("RGB", (4, 4)), "PNG"), max_pixels=LIMIT)
    assert set(loaded_sizes) == {(4, 4)}  # the spy does see ordinary decodes


# --- bad input ---------------------------------------------------------------------------------------------


def truncated_jpeg() -> bytes:
    data = encode(noise(64, 64), "JPEG", quality=95)
    return data[: int(len(data) * 0.7)]


def corrupt_png() -> bytes:
    data = bytearray(encode(noise(16, 16), "PNG"))
    data[-20] ^= 0xFF  # inside IDAT: the CRC check fails
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 3, np.random.default_rng(1).bytes(4096), truncated_jpeg(), corrupt_png()],
    ids=["empty", "tiny", "random", "truncated-jpeg", "corrupt-png"],
)
def test_invalid_bytes(data):
    with pytest.raises(InvalidImage) as caught:
        decode_image(data, max_pixels=LIMIT, index=2)
    assert type(caught.value) is InvalidImage
    assert str(caught.value).startswith("image 2: ")
    assert caught.value.index == 2


def test_truncated_jpeg_stays_refused_when_header_is_intact():
    data = truncated_jpeg()
    assert Image.open(io.BytesIO(data)).size == (64, 64)  # header readable: the failure is in the pixels
    with pytest.raises(InvalidImage, match="cannot decode JPEG"):
        decode_image(data, max_pixels=LIMIT)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidImage, match="cannot read"):
        decode_image(tmp_path / "nope.jpg", max_pixels=LIMIT)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (encode(Image.new("RGB", (4, 4)), "TIFF"), "TIFF"),
        (encode(Image.new("RGB", (4, 4)), "PDF"), "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF/AVIF"),
    ],
    ids=["tiff", "pdf", "heic"],
)
def test_unsupported_formats(data, name):
    with pytest.raises(UnsupportedImage, match=f"image 0: {name} is not accepted") as caught:
        decode_image(data, max_pixels=LIMIT, index=0)
    assert caught.value.code == "unsupported_image"


def test_wrong_source_type():
    with pytest.raises(TypeError):
        decode_image(42, max_pixels=LIMIT)  # type: ignore[arg-type]


# --- framework parity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize(("width", "height"), [(97, 301), (50, 30)], ids=["down", "up"])
def test_matches_torchvision_pipeline(interpolation, width, height):
    image = noise(width, height, seed=3)
    cfg = PreprocessConfig(interpolation=interpolation)
    mode = T.InterpolationMode.BILINEAR if interpolation == "bilinear" else T.InterpolationMode.BICUBIC
    reference = T.Compose(
        [T.Resize((256, 128), interpolation=mode), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )(image)
    ours = normalize(prepare_image(encode(image, "PNG"), cfg)[None], cfg)[0]
    assert (ours - reference).abs().max() <= 1e-5


@pytest.mark.parametrize("height", [256, 384])
def test_matches_fastreid_convention(height):
    image = noise(90, 200, seed=4)
    cfg = PreprocessConfig.fastreid(height=height)
    resized = T.Resize((height, 128), interpolation=T.InterpolationMode.BICUBIC)(image)
    pixels_255 = torch.as_tensor(np.array(resized)).permute(2, 0, 1).float()
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    reference = (pixels_255 - mean) / std
    ours = normalize(prepare_image(encode(image, "PNG"), cfg)[None], cfg)[0]
    assert ours.shape == (3, height, 128)
    assert (ours - reference).abs().max() <= 1e-5


def test_both_conventions_agree_given_same_interpolation():
    batch = prepare_image(encode(noise(40, 80), "PNG"), PreprocessConfig())[None]
    fastreid_bilinear = PreprocessConfig(
        mean=PreprocessConfig.fastreid().mean, std=PreprocessConfig.fastreid().std, pixel_range=255
    )
    assert (normalize(batch, PreprocessConfig()) - normalize(batch, fastreid_bilinear)).abs().max() <= 1e-5


# --- normalize ---------------------------------------------------------------------------------------------


@pytest.fixture
def uint8_batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, 3, 256, 128), dtype=torch.uint8, generator=generator)


def test_normalize_affine_by_hand(uint8_batch):
    cfg = PreprocessConfig()
    out = normalize(uint8_batch, cfg)
    for c in range(3):
        expected = (uint8_batch[:, c].double() / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert (out[:, c].double() - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_normalize_low_precision_rounds_once_from_float32(uint8_batch, dtype):
    cfg = PreprocessConfig.fastreid()
    out = normalize(uint8_batch, cfg, dtype=dtype)
    assert out.dtype == dtype
    assert torch.equal(out, normalize(uint8_batch, cfg).to(dtype))


def test_normalize_channels_last(uint8_batch):
    cfg = PreprocessConfig()
    out = normalize(uint8_batch, cfg, channels_last=True)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not out.is_contiguous()
    assert torch.equal(out, normalize(uint8_batch, cfg))


def test_normalize_rejects_wrong_input(uint8_batch):
    with pytest.raises(TypeError):
        normalize(uint8_batch.float(), PreprocessConfig())
    with pytest.raises(ValueError, match="shape"):
        normalize(uint8_batch[0], PreprocessConfig())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_normalize_on_cuda_matches_cpu(uint8_batch):
    cfg = PreprocessConfig.fastreid()
    out = normalize(uint8_batch.cuda(), cfg, dtype=torch.float16, channels_last=True)
    assert out.device.type == "cuda"
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert (out.cpu().float() - normalize(uint8_batch, cfg).half().float()).abs().max() <= 1e-3


# --- Preprocessor ------------------------------------------------------------------------------------------


def colour_of(index: int) -> tuple[int, int, int]:
    return (index * 10 % 256, 255 - index * 7 % 256, index * 3 % 256)


def test_batch_order_preserved(preprocessor):
    sources = [encode(Image.new("RGB", (20 + i, 40), colour_of(i)), "PNG") for i in range(24)]
    batch = preprocessor.prepare_batch(sources)
    assert batch.shape == (24, 3, 256, 128)
    assert batch.dtype == torch.uint8
    for i in range(24):
        assert batch[i, :, 100, 60].tolist() == list(colour_of(i))


def test_paths_and_bytes_agree(preprocessor, tmp_path):
    data = encode(noise(30, 60), "PNG")
    path = tmp_path / "person.png"
    path.write_bytes(data)
    batch = preprocessor.prepare_batch([data, path, str(path)])
    assert torch.equal(batch[0], batch[1])
    assert torch.equal(batch[0], batch[2])
    assert torch.equal(preprocessor.prepare(path), batch[0])


def test_batch_raises_lowest_bad_index(preprocessor):
    good = encode(Image.new("RGB", (8, 8)), "PNG")
    tiff = encode(Image.new("RGB", (4, 4)), "TIFF")
    with pytest.raises(InvalidImage) as caught:
        preprocessor.prepare_batch([good, b"garbage", good, tiff, good])
    assert caught.value.index == 1
    assert str(caught.value).startswith("image 1: ")


def test_prepare_many_keeps_errors_in_place(preprocessor):
    good = encode(Image.new("RGB", (8, 8), GREEN), "PNG")
    big = encode(Image.new("RGB", (2000, 1000)), "PNG")
    pre = Preprocessor(PreprocessConfig(max_pixels=1_000_000), workers=2)
    with pre:
        results = pre.prepare_many([good, b"", big, good])
    assert isinstance(results[0], torch.Tensor)
    assert isinstance(results[3], torch.Tensor)
    assert type(results[1]) is InvalidImage
    assert isinstance(results[2], ImageTooLarge)
    assert [r.index for r in results if isinstance(r, InvalidImage)] == [1, 2]
    assert results[0][:, 0, 0].tolist() == list(GREEN)


def test_empty_batch(preprocessor):
    assert preprocessor.prepare_batch([]).shape == (0, 3, 256, 128)
    assert preprocessor.prepare_many([]) == []


def test_taller_size_from_config():
    with Preprocessor(PreprocessConfig.fastreid(height=384), workers=2) as pre:
        assert pre.prepare_batch([encode(noise(64, 64), "JPEG")]).shape == (1, 3, 384, 128)


def test_invalid_worker_count():
    with pytest.raises(ConfigError):
        Preprocessor(workers=0)


# --- config ------------------------------------------------------------------------------------------------


def test_presets():
    assert PreprocessConfig.torchvision() == PreprocessConfig()
    fast = PreprocessConfig.fastreid(height=384)
    assert (fast.height, fast.width, fast.pixel_range, fast.interpolation) == (384, 128, 255, "bicubic")
    assert fast.mean == pytest.approx((123.675, 116.28, 103.53))
    assert fast.std == pytest.approx((58.395, 57.12, 57.375))


def test_affine_by_hand():
    scale, shift = PreprocessConfig(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0)).affine()
    assert scale == pytest.approx((2 / 255, 4 / 255, 0.5 / 255))
    assert shift == pytest.approx((-1.0, -1.0, 0.0))
    fast_scale, fast_shift = PreprocessConfig.fastreid().affine()
    vision_scale, vision_shift = PreprocessConfig().affine()
    assert fast_scale == pytest.approx(vision_scale)
    assert fast_shift == pytest.approx(vision_shift)


@pytest.mark.parametrize("cfg", [PreprocessConfig(), PreprocessConfig.fastreid(height=384, max_pixels=10**6)])
def test_dict_round_trip_through_json(cfg):
    record = json.loads(json.dumps(cfg.to_dict()))
    assert PreprocessConfig.from_dict(record) == cfg
    assert hash(PreprocessConfig.from_dict(record)) == hash(cfg)


def test_from_dict_defaults_and_unknown_keys():
    assert PreprocessConfig.from_dict({"height": 384}) == PreprocessConfig(height=384)
    with pytest.raises(ConfigError, match="colour"):
        PreprocessConfig.from_dict({"colour": "red"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"height": 0},
        {"width": -1},
        {"height": 256.0},
        {"max_pixels": 0},
        {"mean": (0.5, 0.5)},
        {"mean": ("a", "b", "c")},
        {"mean": (0.5, float("nan"), 0.5)},
        {"std": (0.2, 0.0, 0.2)},
        {"mean": (123.0, 116.0, 103.0)},  # 0–255 mean with a 0–1 pixel range
        {"pixel_range": 255},  # ImageNet 0–1 mean/std with 0–255 pixels
        {"pixel_range": 100},
        {"interpolation": "lanczos"},
    ],
)
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        PreprocessConfig(**kwargs)


def test_config_normalises_sequences_to_tuples():
    cfg = PreprocessConfig(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])  # type: ignore[arg-type]
    assert cfg.mean == (0.5, 0.5, 0.5)
    assert isinstance(cfg.std, tuple)


def test_decode_from_path_object(tmp_path: Path):
    path = tmp_path / "a.webp"
    path.write_bytes(encode(Image.new("RGB", (5, 3), BLUE), "WEBP", lossless=True))
    assert pixels(decode_image(path, max_pixels=LIMIT)).tolist() == [[list(BLUE)] * 5] * 3
