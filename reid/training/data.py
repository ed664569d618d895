"""Labelled crops for training: decode and resize exactly as inference does, then BoT's augmentations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from reid.datasets import ImageRecord
from reid.errors import ConfigError
from reid.preprocess import PreprocessConfig, normalize, prepare_image


@dataclass(frozen=True)
class Augment:
    """Random horizontal flip, zero padding then a random crop back to size, random erasing (Zhong et al.:
    area 2–40 %, aspect 0.3–3.3, filled with 0, the mean pixel once normalised)."""

    flip_prob: float = 0.5
    pad: int = 10
    erasing_prob: float = 0.5

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """``image``: one normalised (3, H, W) float tensor; randomness from torch's generator."""
        _, height, width = image.shape
        if torch.rand(()) < self.flip_prob:
            image = image.flip(-1)
        if self.pad:
            padded = F.pad(image, (self.pad,) * 4)
            top, left = (int(torch.randint(0, 2 * self.pad + 1, ())) for _ in range(2))
            image = padded[:, top : top + height, left : left + width]
        if torch.rand(()) < self.erasing_prob:
            image = _erase(image)
        return image.contiguous()


def _erase(image: torch.Tensor, attempts: int = 100) -> torch.Tensor:
    _, height, width = image.shape
    for _ in range(attempts):
        area = height * width * float(torch.empty(()).uniform_(0.02, 0.4))
        aspect = float(torch.empty(()).uniform_(0.3, 1 / 0.3))
        h, w = round((area * aspect) ** 0.5), round((area / aspect) ** 0.5)
        if 0 < h < height and 0 < w < width:
            top, left = int(torch.randint(0, height - h + 1, ())), int(torch.randint(0, width - w + 1, ()))
            image = image.clone()
            image[:, top : top + h, left : left + w] = 0
            return image
    return image


def identity_labels(records: Sequence[ImageRecord]) -> tuple[list[int], dict[int, int]]:
    """Contiguous class labels 0..C-1 for the records' person ids (sorted), and the person → label map.
    Junk and distractors (person id < 0) have no identity to learn and are refused."""
    persons: list[int] = []
    for record in records:
        if record.person_id is None or record.person_id < 0:
            raise ConfigError(f"{record.key}: every training crop needs a person id >= 0")
        persons.append(record.person_id)
    mapping = {person: label for label, person in enumerate(sorted(set(persons)))}
    return [mapping[person] for person in persons], mapping


class TrainingCrops(Dataset[tuple[torch.Tensor, int]]):
    """Item ``i``: the augmented, normalised crop of ``records[i]`` and its class label."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        labels: Sequence[int],
        preprocess: PreprocessConfig,
        augment: Augment,
    ) -> None:
        self.records, self.labels = list(records), list(labels)
        self.preprocess, self.augment = preprocess, augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = prepare_image(self.records[index].path, self.preprocess)
        image = normalize(pixels[None], self.preprocess)[0]
        return self.augment(image), self.labels[index]
