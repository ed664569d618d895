"""A tiny, deterministic dataset in Market-1501 layout, for tests and demos.

Each identity is a stick figure with its own shirt colour, trousers colour and shirt mark; each camera
has its own background, brightness and horizontal offset; each image adds a little jitter and noise.
The gallery also holds distractors (person ``0000``, random colours) and junk (person ``-1``, a partial
detection), so the evaluation protocol is exercised. Same arguments → byte-identical files.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from reid.datasets.market import GALLERY_DIR, QUERY_DIR, TRAIN_DIR, MarketDataset, load_market
from reid.datasets.records import DISTRACTOR_PID, JUNK_PID
from reid.errors import ConfigError

# Successive multiples of an irrational number spread hues evenly around the colour wheel.
_GOLDEN = 0.618033988749895
_SILVER = 0.414213562373095
_MARKS = ("none", "band", "stripe", "square")


@dataclass(frozen=True)
class _Look:
    shirt: tuple[float, float, float]
    trousers: tuple[float, float, float]
    mark: str


def _rgb(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(hue % 1.0, saturation, value)


def _identity_look(pid: int, seed: int) -> _Look:
    # Two different irrational steps: identities close in shirt hue are far apart in trousers hue.
    offset = seed * 0.1234
    return _Look(
        shirt=_rgb(offset + pid * _GOLDEN, 0.85, 0.95 - 0.25 * (pid % 2)),
        trousers=_rgb(offset + pid * _SILVER, 0.7, 0.35 + 0.2 * (pid % 3)),
        mark=_MARKS[pid % len(_MARKS)],
    )


def _random_look(rng: np.random.Generator) -> _Look:
    return _Look(
        shirt=_rgb(rng.random(), 0.3 + 0.6 * rng.random(), 0.4 + 0.6 * rng.random()),
        trousers=_rgb(rng.random(), 0.3 + 0.6 * rng.random(), 0.2 + 0.6 * rng.random()),
        mark=_MARKS[int(rng.integers(len(_MARKS)))],
    )


class _Painter:
    """Draws figures on an H×W float RGB canvas with numpy masks."""

    def __init__(self, height: int, width: int, num_cameras: int, seed: int) -> None:
        self.height, self.width = height, width
        self.ys, self.xs = np.mgrid[0:height, 0:width].astype(np.float32)
        self.backgrounds = [_rgb(seed * 0.37 + cam / num_cameras, 0.25, 0.55) for cam in range(num_cameras)]
        self.brightness = [0.85 + 0.25 * cam / max(num_cameras - 1, 1) for cam in range(num_cameras)]
        self.offsets = [round((cam % 3 - 1) * width * 0.12) for cam in range(num_cameras)]

    def _box(self, top: float, bottom: float, left: float, right: float) -> np.ndarray:
        h, w = self.height, self.width
        return (self.ys >= top * h) & (self.ys < bottom * h) & (self.xs >= left * w) & (self.xs < right * w)

    def paint(
        self, look: _Look, camera: int, rng: np.random.Generator, *, crop_bottom: float = 1.0
    ) -> np.ndarray:
        """One image from ``camera`` (0-based); ``crop_bottom`` < 1 leaves the figure's lower part out."""
        canvas = np.empty((self.height, self.width, 3), dtype=np.float32)
        canvas[:] = self.backgrounds[camera]
        shift = (self.offsets[camera] + int(rng.integers(-2, 3))) / self.width
        centre = 0.5 + shift
        head = ((self.ys / self.height - 0.14) / 0.09) ** 2 + (
            (self.xs / self.width - centre) / 0.16
        ) ** 2 < 1
        canvas[head] = (0.93, 0.76, 0.62)
        torso = self._box(0.25, 0.56, centre - 0.27, centre + 0.27)
        canvas[torso] = look.shirt
        mark = {
            "none": np.zeros_like(torso),
            "band": self._box(0.36, 0.44, centre - 0.27, centre + 0.27),
            "stripe": self._box(0.25, 0.56, centre - 0.06, centre + 0.06),
            "square": self._box(0.32, 0.46, centre - 0.12, centre + 0.12),
        }[look.mark]
        canvas[mark] = 1.0 - np.asarray(look.shirt, dtype=np.float32)
        for left in (centre - 0.22, centre + 0.03):
            canvas[self._box(0.56, 0.95, left, left + 0.19)] = look.trousers
        canvas[self.ys >= crop_bottom * self.height] = self.backgrounds[camera]
        canvas *= self.brightness[camera] * (1.0 + 0.05 * rng.standard_normal())
        canvas += 0.03 * rng.standard_normal(canvas.shape).astype(np.float32)
        result: np.ndarray = (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return result


def make_synthetic_market(
    root: str | Path,
    *,
    num_ids: int = 8,
    num_train_ids: int = 4,
    num_cameras: int = 3,
    images_per_id_per_camera: int = 2,
    num_distractors: int = 4,
    num_junk: int = 4,
    queries_per_camera: int = 1,
    height: int = 64,
    width: int = 32,
    image_format: Literal["jpg", "png"] = "jpg",
    seed: int = 0,
) -> MarketDataset:
    """Write a Market-1501 layout under ``root`` and return it loaded.

    Test identities ``num_train_ids + 1 .. num_train_ids + num_ids`` each get ``queries_per_camera`` query
    images and ``images_per_id_per_camera`` gallery images per camera (each camera's crops of a person
    share the sequence ``s1``: one track); training identities ``1 .. num_train_ids``
    get ``images_per_id_per_camera`` images per camera in ``bounding_box_train`` (omitted when 0).
    Refuses (:class:`ConfigError`) to write into a split folder that already holds files.
    """
    if num_ids < 1 or num_cameras < 2 or images_per_id_per_camera < 1 or queries_per_camera < 1:
        raise ConfigError(
            "a synthetic dataset needs num_ids >= 1, images_per_id_per_camera >= 1, queries_per_camera >= 1 "
            "and num_cameras >= 2 (so that every query has a match)"
        )
    if min(num_train_ids, num_distractors, num_junk) < 0 or min(height, width) < 16:
        raise ConfigError("synthetic dataset counts must be >= 0 and images at least 16×16")
    if num_cameras > 9:
        raise ConfigError("Market-1501 names hold a single-digit camera: num_cameras must be <= 9")
    root = Path(root)
    splits = (QUERY_DIR, GALLERY_DIR) + ((TRAIN_DIR,) if num_train_ids else ())
    for split in splits:
        folder = root / split
        if folder.is_dir() and any(folder.iterdir()):
            raise ConfigError(f"{folder}: not empty; choose a new folder for the synthetic dataset")
        folder.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    painter = _Painter(height, width, num_cameras, seed)
    frame = 0
    # Fixed encoder settings (and no metadata: Pillow writes none by default) keep the bytes reproducible.
    encoder_options: dict[str, Any] = {"quality": 90} if image_format == "jpg" else {"compress_level": 6}

    def write(split: str, pid: int, camera: int, pixels: np.ndarray) -> None:
        nonlocal frame
        frame += 1
        name = f"{pid:04d}" if pid != JUNK_PID else str(JUNK_PID)
        path = root / split / f"{name}_c{camera + 1}s1_{frame:06d}_01.{image_format}"
        Image.fromarray(pixels).save(path, **encoder_options)

    for pid in range(1, num_train_ids + 1):
        look = _identity_look(pid, seed)
        for camera in range(num_cameras):
            for _ in range(images_per_id_per_camera):
                write(TRAIN_DIR, pid, camera, painter.paint(look, camera, rng))
    for pid in range(num_train_ids + 1, num_train_ids + num_ids + 1):
        look = _identity_look(pid, seed)
        for camera in range(num_cameras):
            for _ in range(queries_per_camera):
                write(QUERY_DIR, pid, camera, painter.paint(look, camera, rng))
            for _ in range(images_per_id_per_camera):
                write(GALLERY_DIR, pid, camera, painter.paint(look, camera, rng))
    for index in range(num_distractors):
        camera = index % num_cameras
        write(GALLERY_DIR, DISTRACTOR_PID, camera, painter.paint(_random_look(rng), camera, rng))
    for index in range(num_junk):
        camera = index % num_cameras
        pixels = painter.paint(_random_look(rng), camera, rng, crop_bottom=0.3 + 0.2 * rng.random())
        write(GALLERY_DIR, JUNK_PID, camera, pixels)
    return load_market(root)
