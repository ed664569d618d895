"""Training settings: one frozen dataclass, named presets, a config file, and a hash of what matters."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from reid.errors import ConfigError

Schedule = Literal["step", "cosine"]
Optimizer = Literal["adam", "sgd"]
TrainDtype = Literal["auto", "fp32", "bf16", "fp16"]
# Settings that change how fast a run goes, not what it computes: left out of the config hash.
_NOT_HASHED = frozenset({"workers", "eval_every", "device"})


@dataclass(frozen=True)
class TrainConfig:
    """The BoT recipe's knobs, with reid-strong-baseline's values as defaults (SE-IBN-R50, 256×128)."""

    backbone: str = "se_resnet50_ibn_a"
    last_stride: int = 1
    height: int = 256
    width: int = 128
    epochs: int = 120
    batch_size: int = 64  # P × K images per optimiser step, over all processes together
    instances: int = 4  # K: crops per identity in a batch
    optimizer: Optimizer = "adam"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9  # SGD only
    warmup_epochs: int = 10
    warmup_factor: float = 0.01  # the first epoch's learning rate, as a fraction of lr
    schedule: Schedule = "step"
    milestones: tuple[int, ...] = (40, 70)
    gamma: float = 0.1
    label_smoothing: float = 0.1
    triplet_margin: float = 0.3  # 0: soft margin (softplus)
    triplet_weight: float = 1.0
    id_weight: float = 1.0
    flip_prob: float = 0.5
    pad: int = 10
    erasing_prob: float = 0.5
    seed: int = 0
    eval_every: int = 10  # epochs between evaluations on the query/gallery split; 0: at the end only
    workers: int = 4  # decoding processes per training process
    device: str = "auto"
    dtype: TrainDtype = "auto"  # auto: bf16 (fp16 without bf16) autocast on GPU, fp32 on CPU
    channels_last: bool = True  # GPU only
    weights: str | None = None  # initial weights (any checkpoint the loader reads): backbone only

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        positive = ("height", "width", "epochs", "batch_size", "instances", "lr")
        bad = [name for name in positive if getattr(self, name) <= 0]
        if bad:
            raise ConfigError(f"training settings must be positive: {', '.join(bad)}")
        if self.batch_size % self.instances:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be a multiple of instances ({self.instances}): "
                "a batch holds P identities × K crops"
            )
        if self.batch_size // self.instances < 2:
            raise ConfigError("a batch needs at least 2 identities for the triplet loss")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.warmup_factor <= 1:
            raise ConfigError("label_smoothing must lie in [0, 1) and warmup_factor in [0, 1]")
        if min(self.flip_prob, self.erasing_prob) < 0 or max(self.flip_prob, self.erasing_prob) > 1:
            raise ConfigError("flip_prob and erasing_prob are probabilities")
        if min(self.pad, self.warmup_epochs, self.eval_every, self.workers) < 0 or self.triplet_margin < 0:
            raise ConfigError("pad, warmup_epochs, eval_every, workers and triplet_margin must be >= 0")
        for name, allowed in (("schedule", Schedule), ("optimizer", Optimizer), ("dtype", TrainDtype)):
            choices = get_args(allowed)
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["milestones"] = list(self.milestones)
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> TrainConfig:
        unknown = set(record) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown training setting(s) {sorted(unknown)}")
        try:
            return cls(**record)
        except TypeError as exc:
            raise ConfigError(f"invalid training settings: {exc}") from None

    def digest(self) -> str:
        """SHA-256 (16 hex) of every setting that changes the result: the run's identity for ``--resume``."""
        relevant = {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}
        canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


PRESETS: dict[str, TrainConfig] = {
    # reid-strong-baseline / fast-reid BoT on Market-1501, with the product's SE-IBN-R50 backbone.
    "bot": TrainConfig(),
    "bot-r50": TrainConfig(backbone="resnet50"),
    # A model small enough to fine-tune on a CPU in minutes (demos, tests, precision checks).
    "small": TrainConfig(
        backbone="resnet18",
        height=128,
        width=64,
        epochs=30,
        batch_size=32,
        warmup_epochs=3,
        milestones=(20,),
        eval_every=5,
        pad=5,
    ),
}


def _read_file(path: Path) -> dict[str, Any]:
    if path.suffix not in (".json", ".toml"):
        raise ConfigError(f"training config {path} must be .json or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read training config {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".json":
            record = json.loads(text)
        else:
            if sys.version_info < (3, 11):
                raise ConfigError("TOML training configs need Python 3.11; use JSON")
            import tomllib

            record = tomllib.loads(text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a valid config file ({exc})") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path}: a training config is a table of settings")
    return record


def load_config(
    preset: str | None = None, path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """A preset (default ``bot``), then the file's settings (its ``preset`` key may name the base), then
    ``overrides`` (flags given on the command line), each winning over the one before."""
    from_file = _read_file(Path(path)) if path is not None else {}
    name = preset or from_file.pop("preset", None) or "bot"
    from_file.pop("preset", None)
    if name not in PRESETS:
        raise ConfigError(f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}")
    return TrainConfig.from_dict({**PRESETS[name].to_dict(), **from_file, **(overrides or {})})
