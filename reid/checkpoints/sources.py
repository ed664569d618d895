"""Foreign checkpoint layouts → our ``ReIDModel`` layout. The only module that knows other frameworks' names.

Each source has one pure function from its (unwrapped) state dict to ours: ``backbone.*`` with
torchvision / IBN-Net / fast-reid module names, and ``head.pool.p`` (GeM), ``head.bnneck.*`` (BNNeck),
``head.classifier.*`` (training-only classifier; the loader keeps it only when the model has one).
Entries that are documented as not part of the inference model are dropped and listed; anything else
that is unknown is passed through so the strict load names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

from reid.errors import CheckpointError

BACKBONE = "backbone."
HEAD_POOL_P = "head.pool.p"
HEAD_BNNECK = "head.bnneck."
HEAD_CLASSIFIER = "head.classifier."

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Remapped:
    """A state dict in our layout, the keys dropped on the way, and fast-reid's pixel statistics if stored."""

    state_dict: dict[str, torch.Tensor]
    dropped: tuple[str, ...] = ()
    pixel_mean: Triple | None = None
    pixel_std: Triple | None = None


def _rename(key: str, renames: Iterable[tuple[str, str]]) -> str:
    """Replace the first matching prefix."""
    for old, new in renames:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _split_dropped(
    state: Mapping[str, torch.Tensor], drop: Callable[[str], bool]
) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    kept = {k: v for k, v in state.items() if not drop(k)}
    return kept, tuple(sorted(set(state) - set(kept)))


def _pixel_stat(tensor: torch.Tensor | None, key: str) -> Triple | None:
    if tensor is None:
        return None
    if tensor.numel() != 3:
        raise CheckpointError(f"{key} should hold 3 values (R, G, B), got shape {tuple(tensor.shape)}")
    r, g, b = (float(v) for v in tensor.flatten())
    return r, g, b


def _is_legacy_in_stat(key: str) -> bool:
    # PyTorch 0.3 saved running stats for affine InstanceNorm (old IBN-Net files); they are never used.
    return ".IN.running_" in key


def from_reid(state: Mapping[str, torch.Tensor]) -> Remapped:
    """Our own layout (files written by ``reid convert`` or ``ReIDModel.state_dict()``)."""
    return Remapped(dict(state))


def from_torchvision(state: Mapping[str, torch.Tensor]) -> Remapped:
    """torchvision ResNet and IBN-Net (``resnet50_ibn_a``, ``resnet50_ibn_b``, ``se_resnet*_ibn_a``).

    Same module names as our backbone; the ImageNet classifier ``fc.*`` is dropped.
    """
    kept, dropped = _split_dropped(state, lambda k: k.startswith("fc.") or _is_legacy_in_stat(k))
    return Remapped({BACKBONE + k: v for k, v in kept.items()}, dropped)


def from_fastreid(state: Mapping[str, torch.Tensor]) -> Remapped:
    """fast-reid ``Baseline``: ``backbone.*`` as ours; the EmbeddingHead renamed.

    Head names by era: ``heads.bnneck.*`` + ``heads.classifier.weight`` (2020 model zoo),
    ``heads.bottleneck.0.*`` + ``heads.classifier.weight`` (v1.0), ``heads.bottleneck.0.*`` + ``heads.weight``
    (since 2021-03). ``pixel_mean``/``pixel_std`` buffers (persistent until 2021-03) are returned separately.
    """
    bottleneck = state.get("heads.bottleneck.0.weight")
    if bottleneck is not None and bottleneck.ndim != 1:
        raise CheckpointError(
            "fast-reid head with EMBEDDING_DIM > 0 (a 1×1 conv before the BNNeck) is not supported; "
            "only the standard BNNeck head (EMBEDDING_DIM 0) maps onto reid's model"
        )
    renames = (
        ("heads.bottleneck.0.", HEAD_BNNECK),
        ("heads.bnneck.", HEAD_BNNECK),
        ("heads.pool_layer.p", HEAD_POOL_P),
        ("heads.classifier.", HEAD_CLASSIFIER),
        ("heads.weight", HEAD_CLASSIFIER + "weight"),
    )
    stats = ("pixel_mean", "pixel_std")
    kept, dropped = _split_dropped(state, lambda k: k in stats)
    return Remapped(
        {_rename(k, renames): v for k, v in kept.items()},
        dropped,
        pixel_mean=_pixel_stat(state.get("pixel_mean"), "pixel_mean"),
        pixel_std=_pixel_stat(state.get("pixel_std"), "pixel_std"),
    )


def from_strong_baseline(state: Mapping[str, torch.Tensor]) -> Remapped:
    """reid-strong-baseline ``Baseline``: ``base.*`` backbone, ``bottleneck.*`` BNNeck, ``classifier.*``.

    Its ``resnet50_ibn_a`` keeps an unused ImageNet ``fc`` (``base.fc.*``), dropped here. Its SENet
    backbones (``base.layer0.*``, stride on the 1×1 conv) have no counterpart in reid's ResNet family.
    """
    if any(k.startswith("base.layer0.") for k in state):
        raise CheckpointError(
            "reid-strong-baseline SENet/SE-ResNeXt backbones (base.layer0.*, Cadene layout with the stride "
            "on the 1×1 conv) are not supported; use its resnet50 or resnet50_ibn_a models"
        )
    renames = (("base.", BACKBONE), ("bottleneck.", HEAD_BNNECK), ("classifier.", HEAD_CLASSIFIER))
    kept, dropped = _split_dropped(state, lambda k: k.startswith("base.fc."))
    return Remapped({_rename(k, renames): v for k, v in kept.items()}, dropped)


def from_torchreid(state: Mapping[str, torch.Tensor]) -> Remapped:
    """torchreid ResNet / ResNet-IBN-a (``module.`` and ``state_dict`` wrappers are removed on reading).

    torchvision names plus a biased ``classifier``; no BNNeck. The ``*_fc512`` models put an embedding MLP
    (``fc.*``) after pooling, which reid's head does not have.
    """
    if any(k.startswith("fc.") for k in state):
        raise CheckpointError(
            "torchreid models with an fc embedding layer (e.g. resnet50_fc512: fc.0/fc.1 keys) are not "
            "supported; reid's head is pooling + optional BNNeck"
        )
    renames = (("classifier.", HEAD_CLASSIFIER), ("", BACKBONE))  # everything else is the backbone
    return Remapped({_rename(k, renames): v for k, v in state.items()})


SOURCES: dict[str, Callable[[Mapping[str, torch.Tensor]], Remapped]] = {
    "reid": from_reid,
    "torchvision": from_torchvision,
    "ibn-net": from_torchvision,
    "fast-reid": from_fastreid,
    "strong-baseline": from_strong_baseline,
    "torchreid": from_torchreid,
}


def remap(state: Mapping[str, torch.Tensor], source: str) -> Remapped:
    """Apply ``source``'s remap function (see :data:`SOURCES`)."""
    try:
        fn = SOURCES[source]
    except KeyError:
        raise CheckpointError(f"unknown checkpoint source {source!r}; valid: {', '.join(SOURCES)}") from None
    return fn(state)


def _has_prefix(keys: Iterable[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def detect_source(keys: Iterable[str]) -> str:
    """Guess the layout from key names (checked in this order):

    * ``heads.*`` or a ``pixel_mean`` buffer → fast-reid (its Baseline always has a head);
    * ``head.*``, or nothing but ``backbone.*`` → reid (our own files);
    * ``base.*`` → strong-baseline;
    * top-level torchvision stem (``conv1.weight``) with ``classifier.*`` → torchreid;
    * top-level stem with IBN parts (``bn1.IN``, a post-add ``IN``, or an InstanceNorm stem) → ibn-net;
    * top-level stem otherwise → torchvision.
    """
    keys = set(keys)
    if _has_prefix(keys, "heads.") or "pixel_mean" in keys:
        return "fast-reid"
    if _has_prefix(keys, "head.") or (keys and all(k.startswith(BACKBONE) for k in keys)):
        return "reid"
    if _has_prefix(keys, "base."):
        return "strong-baseline"
    if "conv1.weight" in keys:
        if _has_prefix(keys, "classifier."):
            return "torchreid"
        ibn_stem = "bn1.weight" in keys and "bn1.running_mean" not in keys
        if ibn_stem or any(".IN." in k for k in keys):
            return "ibn-net"
        return "torchvision"
    sample = ", ".join(sorted(keys)[:5])
    raise CheckpointError(
        f"cannot tell which framework wrote this checkpoint (keys start: {sample}, ...); "
        f"pass the source explicitly, one of: {', '.join(SOURCES)}"
    )
