"""What a state dict (in our layout) says about the model that wrote it, plus each source's documented
defaults for what the weights cannot say (last stride, stem details, input size, normalisation)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import torch

from reid.checkpoints.sources import BACKBONE, HEAD_BNNECK, HEAD_POOL_P, Triple
from reid.errors import CheckpointError
from reid.models import ReIDConfig, ResNetConfig, get_config, list_models
from reid.preprocess import PreprocessConfig

logger = logging.getLogger(__name__)

# layer4's stride is not visible in the weights. fast-reid and strong-baseline train with LAST_STRIDE 1, and
# ImageNet backbones are re-purposed with the re-ID setting; torchreid's resnet50 / resnet50_ibn_a keep 2.
RE_ID_LAST_STRIDE = 1
DEFAULT_LAST_STRIDE: dict[str, int] = {"torchreid": 2}
DEFAULT_INPUT_SIZE = (256, 128)
# fast-reid's Base-SBS.yml (non-local + learnable GeM) trains and tests at 384×128.
SBS_INPUT_SIZE = (384, 128)


def _not_resnet(what: str, source: str) -> CheckpointError:
    return CheckpointError(
        f"no {what} weights when read as a {source} checkpoint: not a ResNet reid can rebuild, "
        "or the wrong source"
    )


def _stage_blocks(keys: set[str], stage: int, source: str) -> int:
    prefix = f"{BACKBONE}layer{stage}."
    indices = {int(k[len(prefix) :].split(".", 1)[0]) for k in keys if k.startswith(prefix)}
    if not indices:
        raise _not_resnet(prefix + "*", source)
    if indices != set(range(len(indices))):
        raise CheckpointError(f"{prefix}* has gaps in its block numbers: {sorted(indices)}")
    return len(indices)


def _non_local_units(keys: set[str], stage: int) -> int:
    prefix = f"{BACKBONE}NL_{stage}."
    return len({k[len(prefix) :].split(".", 1)[0] for k in keys if k.startswith(prefix)})


def _non_local_width(state: Mapping[str, torch.Tensor]) -> str:
    """Inner width of the non-local units: one channel in most fast-reid files, C/2 in late-2020 ones."""
    for key, value in state.items():
        if key.startswith(f"{BACKBONE}NL_") and key.endswith(".g.weight"):
            return "one" if value.shape[0] == 1 else "half"
    return "one"


def _se_options(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """SE form and reduction from the first unit's squeeze: Linear (hidden, C) or conv (hidden, C, 1, 1)."""
    unit = f"{BACKBONE}layer1.0.se."
    if unit + "fc.0.weight" in state:
        form, squeeze = "linear", state[unit + "fc.0.weight"]
    elif unit + "fc1.weight" in state:
        form, squeeze = "conv", state[unit + "fc1.weight"]
    else:
        return {"se": False}
    hidden, channels = squeeze.shape[:2]
    return {"se": True, "se_form": form, "se_reduction": max(1, channels // hidden)}


def _ibn(keys: set[str]) -> str | None:
    if f"{BACKBONE}layer1.0.bn1.IN.weight" in keys:
        return "a"
    # IBN-b: an affine InstanceNorm stem (no running statistics) and post-add INs.
    if f"{BACKBONE}bn1.weight" in keys and f"{BACKBONE}bn1.running_mean" not in keys:
        return "b"
    return None


def _base_config(structure: dict[str, Any]) -> tuple[str, ResNetConfig]:
    """The preset with this structure (it supplies what weights cannot show, e.g. Keras' BN epsilon)."""
    for name in list_models():
        preset = get_config(name)
        if all(getattr(preset, field) == value for field, value in structure.items()):
            return name, preset
    return "custom", ResNetConfig(**structure)


def infer_config(
    state: Mapping[str, torch.Tensor], source: str, *, last_stride: int | None = None
) -> ReIDConfig:
    """Rebuild the :class:`ReIDConfig` of a state dict in our layout (see :mod:`reid.checkpoints.sources`).

    Depth, block type, SE (form, reduction), IBN-a/b, non-local units, pre-activation, GeM and BNNeck are
    read from the keys; the rest follows ``source``: fast-reid's ceil-mode stem pool, strong-baseline's
    ReLU-less plain-ResNet stem, and the layer4 stride (:data:`DEFAULT_LAST_STRIDE`) unless given.
    The classifier is never part of an inferred config (``num_classes=0``).
    """
    keys = set(state)
    stem = state.get(f"{BACKBONE}conv1.weight")
    if stem is None:
        raise _not_resnet(f"{BACKBONE}conv1", source)
    version = 2 if f"{BACKBONE}post_bn.weight" in keys else 1
    se = _se_options(state)
    structure = {
        "layers": tuple(_stage_blocks(keys, stage, source) for stage in range(1, 5)),
        "block": "bottleneck" if f"{BACKBONE}layer1.0.conv3.weight" in keys else "basic",
        "version": version,
        "se": se.pop("se"),
        "ibn": _ibn(keys) if version == 1 else None,
    }
    name, base = _base_config(structure)
    overrides: dict[str, Any] = {
        **se,
        "non_local": tuple(_non_local_units(keys, stage) for stage in range(1, 5)),
        "non_local_width": _non_local_width(state),
        "conv_bias": f"{BACKBONE}conv1.bias" in keys,
        "in_chans": int(stem.shape[1]),
        "num_classes": 0,
    }
    if version == 1:
        overrides["last_stride"] = (
            last_stride if last_stride is not None else DEFAULT_LAST_STRIDE.get(source, RE_ID_LAST_STRIDE)
        )
        if source == "fast-reid":
            # fast-reid's stem pool: MaxPool2d(3, 2, ceil_mode=True) since 2020-11-06 (padding 1 before;
            # the v0.1.1 model-zoo files predate it, and their zoo entries say so).
            overrides["stem_pool"] = "ceil"
        if source == "strong-baseline" and structure["ibn"] is None:
            overrides["stem_relu"] = False  # its plain ResNet has no ReLU after the stem BN
    elif last_stride is not None:
        overrides["last_stride"] = last_stride
    bnneck = f"{HEAD_BNNECK}weight" in keys
    config = ReIDConfig(
        backbone=base.replace(**overrides),
        backbone_name=name,
        pooling="gem" if HEAD_POOL_P in keys else "avg",
        bnneck=bnneck,
        neck_feat="after" if bnneck else "before",
    )
    logger.debug("inferred %s config from %s weights: %s", name, source, config)
    return config


def default_preprocess(
    source: str,
    config: ReIDConfig,
    *,
    pixel_mean: Triple | None = None,
    pixel_std: Triple | None = None,
    input_size: tuple[int, int] | None = None,
) -> PreprocessConfig:
    """The preprocessing each framework trains with.

    fast-reid: bicubic resize, 0–255 pixels, ImageNet mean/std × 255 (or the checkpoint's own
    ``pixel_mean``/``pixel_std``), 384×128 when the model looks like an SBS config (non-local + GeM),
    else 256×128. Everything else: bilinear, 0–1 pixels, ImageNet mean/std, 256×128. ``input_size``
    (height, width) overrides the size.
    """
    if source != "fast-reid":
        height, width = input_size or DEFAULT_INPUT_SIZE
        return PreprocessConfig.torchvision(height=height, width=width)
    if input_size is None:
        sbs = config.pooling == "gem" and any(config.backbone.non_local)
        input_size = SBS_INPUT_SIZE if sbs else DEFAULT_INPUT_SIZE
        if sbs:
            logger.info("fast-reid model with non-local units and GeM: assuming the SBS input size 384×128")
    preprocess = PreprocessConfig.fastreid(height=input_size[0], width=input_size[1])
    if pixel_mean is not None:
        preprocess = dataclasses.replace(preprocess, mean=pixel_mean)
    if pixel_std is not None:
        preprocess = dataclasses.replace(preprocess, std=pixel_std)
    return preprocess
