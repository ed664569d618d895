"""Frozen configuration of the ResNet family: every variant is a value of :class:`ResNetConfig`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from reid.errors import ConfigError

BlockType = Literal["basic", "bottleneck"]
StridePlacement = Literal["first", "last"]
StemPool = Literal["pad", "ceil"]
NonLocalWidth = Literal["one", "half"]
SEForm = Literal["linear", "conv"]
IBNType = Literal["a", "b"]

_BLOCKS = get_args(BlockType)
_PLACEMENTS = get_args(StridePlacement)
_SE_FORMS = get_args(SEForm)
_IBN_TYPES = get_args(IBNType)
_STEM_POOLS = get_args(StemPool)
_NL_WIDTHS = get_args(NonLocalWidth)


@dataclass(frozen=True, kw_only=True)
class ResNetConfig:
    """One member of the ResNet family.

    ``version=1`` is the original post-activation design (conv → BN → ReLU, torchvision layout).
    ``version=2`` is full pre-activation (BN → ReLU → conv, He et al. 2016) in the Keras ResNetV2 layout.

    ``stride_placement`` says which unit of a stage carries the stage's stride: ``"first"`` (the paper and
    torchvision: stride on the first unit, whose projection shortcut also strides) or ``"last"`` (tf-slim
    and Keras: stride on the last unit, whose shortcut then subsamples with a 1×1 max-pool when the
    channel count does not change). In a bottleneck the stride sits on the 3×3 conv ("v1.5"); in a basic
    block on the first 3×3.

    ``strides`` are the four stage strides; the fourth is the re-ID ``last_stride`` (1 keeps a 16×8 C5
    map for a 256×128 input instead of 8×4).
    """

    layers: tuple[int, int, int, int]
    block: BlockType = "bottleneck"
    version: Literal[1, 2] = 1
    stride_placement: StridePlacement = "first"
    strides: tuple[int, int, int, int] = (1, 2, 2, 2)
    se: bool = False
    se_form: SEForm = "linear"
    se_reduction: int = 16
    ibn: IBNType | None = None
    # Non-local blocks per stage (fast-reid SBS): inserted after the last n units of each stage.
    non_local: tuple[int, int, int, int] = (0, 0, 0, 0)
    # fast-reid's Non_local computes `reduc_ratio // reduc_ratio`, i.e. one inner channel, except between
    # 2020-09 and 2020-12 when it used C/2 ("half"); checkpoints carry the shape, so it is configurable.
    non_local_width: NonLocalWidth = "one"
    # Stem max-pool: "pad" = 3×3/2 padding 1 (torchvision); "ceil" = padding 0, ceil_mode (fast-reid since
    # 2020-11): same output size, different values at the border.
    stem_pool: StemPool = "pad"
    # reid-strong-baseline's plain ResNet omits the ReLU after the stem BN; its checkpoints need that too.
    stem_relu: bool = True
    # Bias on the stem conv, each block's last conv and the projection shortcut (Keras ResNetV2).
    conv_bias: bool = False
    bn_eps: float = 1e-5
    num_classes: int = 1000
    in_chans: int = 3

    def __post_init__(self) -> None:
        if len(self.layers) != 4 or any(n < 1 for n in self.layers):
            raise ConfigError(f"layers must be four positive block counts, got {self.layers}")
        if self.block not in _BLOCKS:
            raise ConfigError(f"block must be one of {_BLOCKS}, got {self.block!r}")
        if self.version not in (1, 2):
            raise ConfigError(
                f"version must be 1 (post-activation) or 2 (pre-activation), got {self.version!r}"
            )
        if self.stride_placement not in _PLACEMENTS:
            raise ConfigError(f"stride_placement must be one of {_PLACEMENTS}, got {self.stride_placement!r}")
        if len(self.strides) != 4 or any(s not in (1, 2) for s in self.strides):
            raise ConfigError(f"stage strides (incl. last_stride) must each be 1 or 2, got {self.strides}")
        if self.se_form not in _SE_FORMS:
            raise ConfigError(f"se_form must be one of {_SE_FORMS}, got {self.se_form!r}")
        if self.stem_pool not in _STEM_POOLS:
            raise ConfigError(f"stem_pool must be one of {_STEM_POOLS}, got {self.stem_pool!r}")
        if self.se_reduction < 1:
            raise ConfigError(f"se_reduction must be >= 1, got {self.se_reduction}")
        if self.ibn is not None and self.ibn not in _IBN_TYPES:
            raise ConfigError(f"ibn must be None, 'a' or 'b', got {self.ibn!r}")
        if self.ibn is not None and self.version == 2:
            raise ConfigError("IBN is defined for post-activation (version=1) ResNets only")
        if len(self.non_local) != 4 or any(
            not 0 <= n <= d for n, d in zip(self.non_local, self.layers, strict=True)
        ):
            raise ConfigError(
                f"non_local must give 0..blocks non-local units per stage, got {self.non_local}"
            )
        if self.non_local_width not in _NL_WIDTHS:
            raise ConfigError(f"non_local_width must be one of {_NL_WIDTHS}, got {self.non_local_width!r}")
        if self.num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0 (0 = no classifier), got {self.num_classes}")
        if self.in_chans < 1:
            raise ConfigError(f"in_chans must be >= 1, got {self.in_chans}")

    @property
    def last_stride(self) -> int:
        return self.strides[3]

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        """Output channels of layer1..layer4."""
        e = self.expansion
        return (64 * e, 128 * e, 256 * e, 512 * e)

    @property
    def stem_reduction(self) -> int:
        return 4

    def replace(self, **changes: Any) -> ResNetConfig:
        """A copy with some fields changed; ``last_stride=`` is accepted as a shorthand for ``strides[3]``."""
        if "last_stride" in changes:
            last = changes.pop("last_stride")
            strides = changes.get("strides", self.strides)
            changes["strides"] = (*tuple(strides)[:3], last)
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            valid = [*sorted(f.name for f in dataclasses.fields(self)), "last_stride"]
            raise ConfigError(f"unknown model option(s) {sorted(unknown)}; valid: {valid}")
        for name in ("layers", "strides", "non_local"):
            if name in changes:
                changes[name] = tuple(changes[name])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown ResNetConfig field(s) {sorted(unknown)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


Pooling = Literal["avg", "max", "gem"]
NeckFeat = Literal["before", "after"]
_POOLINGS = get_args(Pooling)
_NECK_FEATS = get_args(NeckFeat)


@dataclass(frozen=True, kw_only=True)
class ReIDConfig:
    """Backbone + re-ID head. Stored beside the weights (manifest) so a checkpoint always rebuilds exactly.

    The head is the strong-baseline / fast-reid BNNeck: global pooling → BatchNorm1d (bias frozen at 0) →
    optional classifier (training only). ``neck_feat`` picks the embedding at inference: ``"after"`` the BN
    (strong-baseline's default, and what fast-reid always returns at test time) or ``"before"``.
    """

    backbone: ResNetConfig
    backbone_name: str = "custom"
    pooling: Pooling = "avg"
    gem_p: float = 3.0
    gem_learnable: bool = True
    gem_eps: float = 1e-6
    bnneck: bool = True
    neck_feat: NeckFeat = "after"
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.backbone.num_classes != 0:
            raise ConfigError(
                "the re-ID backbone must be built with num_classes=0 (the head owns the classifier)"
            )
        if self.pooling not in _POOLINGS:
            raise ConfigError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        if self.neck_feat not in _NECK_FEATS:
            raise ConfigError(f"neck_feat must be one of {_NECK_FEATS}, got {self.neck_feat!r}")
        if self.neck_feat == "after" and not self.bnneck:
            raise ConfigError("neck_feat='after' needs bnneck=True")
        if self.gem_p <= 0:
            raise ConfigError(f"gem_p must be > 0, got {self.gem_p}")
        if self.num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {self.num_classes}")

    @property
    def embedding_dim(self) -> int:
        return self.backbone.stage_channels[3]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReIDConfig:
        values = dict(data)
        try:
            backbone = ResNetConfig.from_dict(values.pop("backbone"))
        except KeyError:
            raise ConfigError("re-ID config has no 'backbone' section") from None
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown ReIDConfig field(s) {sorted(unknown)}")
        return cls(backbone=backbone, **values)
