"""Named presets of the ResNet family and the public constructors ``create_model`` / ``list_models``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reid.errors import UnknownModel
from reid.models.config import BlockType, ResNetConfig
from reid.models.resnet import ResNet

_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


def _v1(depth: int, **kw: Any) -> ResNetConfig:
    block: BlockType = "basic" if depth < 50 else "bottleneck"
    return ResNetConfig(layers=_DEPTHS[depth], block=block, **kw)


def _keras_v2(depth: int) -> ResNetConfig:
    # Keras ResNetV2: pre-activation, stride on the last unit of stages 1-3, none in stage 4,
    # biased stem/last/shortcut convs, BN epsilon 1.001e-5.
    return ResNetConfig(
        layers=_DEPTHS[depth],
        version=2,
        stride_placement="last",
        strides=(2, 2, 2, 1),
        conv_bias=True,
        bn_eps=1.001e-5,
    )


_PRESETS: dict[str, ResNetConfig] = {
    **{f"resnet{d}": _v1(d) for d in (18, 34, 50, 101, 152)},
    **{f"resnet{d}v2": _keras_v2(d) for d in (50, 101, 152)},
    **{f"se_resnet{d}": _v1(d, se=True) for d in (50, 101, 152)},
    **{f"resnet{d}_ibn_a": _v1(d, ibn="a") for d in (18, 34, 50, 101, 152)},
    **{f"resnet{d}_ibn_b": _v1(d, ibn="b") for d in (18, 34, 50, 101, 152)},
    **{f"se_resnet{d}_ibn_a": _v1(d, se=True, ibn="a") for d in (50, 101, 152)},
}


def list_models() -> list[str]:
    """Names of all presets, sorted."""
    return sorted(_PRESETS)


def get_config(name: str, **overrides: Any) -> ResNetConfig:
    """The preset's config with ``overrides`` applied (``last_stride``, ``num_classes``, ``ibn``...)."""
    try:
        cfg = _PRESETS[name]
    except KeyError:
        raise UnknownModel(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None
    return cfg.replace(**overrides) if overrides else cfg


def create_model(
    name: str,
    *,
    features_only: bool = False,
    out_indices: Sequence[int] = (1, 2, 3, 4, 5),
    **overrides: Any,
) -> ResNet:
    """Build a preset, e.g. ``create_model("se_resnet50_ibn_a", last_stride=1, num_classes=0)``."""
    return ResNet(get_config(name, **overrides), features_only=features_only, out_indices=out_indices)
