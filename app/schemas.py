"""Request and response bodies, with the examples shown in the OpenAPI documentation.

JSON requests carry images as base64 text (``*Request`` models); the same endpoints take
``multipart/form-data`` (``*Form`` models) with image files in ``images`` parts and the other fields as
text fields (see ``app.bodies``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Json,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
    model_validator,
)

from reid.gallery import Filters, RetentionPolicy
from reid.gallery.filters import TIME_RANGES
from reid.gallery.items import INPUT_FIELDS, INT64_MAX, INT64_MIN, ITEM_FIELDS, KEY_FIELD, FieldSpec
from reid.gallery.retention import MAX_DAYS, RetentionClock

MAX_K = 1000
EXAMPLE_MODEL = "se_resnet50_ibn_a-3f1c9a7be20d4c58"
# A 1×1 white PNG, so the examples can be sent as they are.
EXAMPLE_IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"

INT64_RANGE = Interval(ge=INT64_MIN, le=INT64_MAX)
Int64 = Annotated[int, INT64_RANGE]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Base64Image = Annotated[
    str,
    Field(
        description="base64 image bytes (JPEG, PNG, WebP, BMP, GIF); a data:image/...;base64, URL works too",
        json_schema_extra={"contentEncoding": "base64", "contentMediaType": "image/*"},
    ),
]
ImageFiles = Annotated[list[bytes], Field(min_length=1, description="image files, one 'images' part each")]
EncodingFormat = Literal["float", "base64"]


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    # JSON parsing accepts NaN/Infinity literals; they would not survive a round trip through storage.
    try:
        json.dumps(value, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"metadata must be plain JSON: {exc}") from None
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_json_safe)]

# Text limits of the API (the storage backends may hold more).
MAX_KEY_CHARS = 1024
MAX_TEXT_CHARS = 4096


def _api_field(spec: FieldSpec) -> tuple[Any, Any]:
    """The pydantic type and field of one item field, from its kind."""
    if spec.kind == "json":
        return Metadata, Field(default_factory=dict, description=spec.description)
    if spec.kind == "text":
        shortest, longest = (1, MAX_KEY_CHARS) if spec.unique else (None, MAX_TEXT_CHARS)
        text = Field(default=None, description=spec.description, min_length=shortest, max_length=longest)
        return str | None, text
    value = Int64 if spec.kind == "int" else FiniteFloat
    return value | None, Field(default=None, description=spec.description)


def _item_model(
    name: str, base: type[BaseModel], specs: Sequence[FieldSpec] = ITEM_FIELDS, **leading: Any
) -> type[BaseModel]:
    """A model holding ``leading`` fields then the item fields ``specs`` of ``reid.gallery.items``
    (declared once there; default: all, the managed ones included), to subclass. Built at import time,
    so mypy cannot follow it: the subclasses carry ``type: ignore[misc]`` and their fields are typed
    ``Any`` to it."""
    fields_: dict[str, Any] = {**leading, **{spec.name: _api_field(spec) for spec in specs}}
    return create_model(name, __base__=base, **fields_)


def _unique_keys(items: Sequence[ItemFields]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        key = getattr(item, KEY_FIELD)
        if key is not None and key in seen:
            raise ValueError(f"item {i}: key {key!r} appears more than once")
        if key is not None:
            seen.add(key)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error response."""

    error: str = Field(description="stable machine-readable code, e.g. invalid_image, queue_full")
    detail: str = Field(description="human-readable message; names the offending item where there is one")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": "invalid_image", "detail": "image 2: cannot decode JPEG image"}]
        }
    )


# --- /embed --------------------------------------------------------------------------------------


TrackLabel = Annotated[str | int, Field(description="a track label (text or an integer)")]
Quality = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class TrackOptions(_Strict):
    """Crops grouped into tracks: each track's crops are aggregated into one embedding, the normalised
    (quality-weighted) mean of the normalised crop embeddings."""

    tracks: list[TrackLabel] | None = Field(
        default=None,
        min_length=1,
        description="the track of each image (or embedding), in order; crops with one label form a track",
    )
    quality: list[Quality] | None = Field(
        default=None,
        min_length=1,
        description="each crop's weight in its track's mean (e.g. a detector's confidence); needs tracks",
    )

    @model_validator(mode="after")
    def _quality_needs_tracks(self) -> TrackOptions:
        if self.quality is not None and self.tracks is None:
            raise ValueError("quality weighs crops within tracks: give tracks too")
        if self.quality is not None and self.tracks is not None and len(self.quality) != len(self.tracks):
            raise ValueError(f"got {len(self.quality)} quality values for {len(self.tracks)} track labels")
        return self

    def track_labels(self) -> list[str] | None:
        return None if self.tracks is None else [str(label) for label in self.tracks]


class EmbedOptions(TrackOptions):
    normalize: bool = Field(default=True, description="L2-normalise each embedding")
    encoding_format: EncodingFormat = Field(
        default="float",
        description="'float': JSON numbers; 'base64': little-endian float32 bytes, base64-encoded",
    )


class EmbedRequest(EmbedOptions):
    images: list[Base64Image] = Field(min_length=1, description="images in base64, embedded in this order")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"images": [EXAMPLE_IMAGE], "normalize": True, "encoding_format": "float"}]
        }
    )


class EmbedForm(EmbedOptions):
    images: ImageFiles


class Embedding(BaseModel):
    index: int = Field(description="position of the image in the request")
    embedding: list[float] | str = Field(
        description="numbers, or base64 float32 bytes (encoding_format='base64')"
    )


class TrackEmbedding(BaseModel):
    track: str = Field(description="the track label, as given")
    size: int = Field(description="crops aggregated")
    embedding: list[float] | str = Field(description="the track's unit embedding, encoded as data's")


class EmbedResponse(BaseModel):
    model: str = Field(description="fingerprint of the model that computed the embeddings")
    dim: int
    encoding_format: EncodingFormat
    data: list[Embedding]
    tracks: list[TrackEmbedding] | None = Field(
        default=None,
        description="one aggregated embedding per track, in order of first appearance (with tracks)",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": EXAMPLE_MODEL,
                    "dim": 4,
                    "encoding_format": "float",
                    "data": [{"index": 0, "embedding": [0.5, -0.5, 0.5, 0.5]}],
                }
            ]
        }
    )


# --- /search -------------------------------------------------------------------------------------


def _filter_help(name: str) -> str:
    """The description of a filter, from its declaration in :class:`Filters`."""
    help_text: str = next(f.metadata["help"] for f in fields(Filters) if f.name == name)
    return help_text


def _deprecated(use: str) -> Any:
    return Field(default=None, description=f"deprecated: use {use}", json_schema_extra={"deprecated": True})


# Filter names the API had before it took the library's: old name -> Filters field.
RENAMED_FILTERS = {"cameras": "cameras_in", "exclude_cameras": "cameras_not_in"}


GroupBy = Literal["track_id", "person_id"]


# Strict: JSON true must not turn into 1 (a condition on a boolean is refused, not guessed).
MetadataCondition = (
    StrictStr | Annotated[StrictInt, INT64_RANGE] | Annotated[StrictFloat, Field(allow_inf_nan=False)]
)


class FilterFields(_Strict):
    """The filter vocabulary of :class:`reid.gallery.Filters` (one with the library and the CLI); every
    condition given must hold."""

    cameras_in: list[Int64] | None = Field(default=None, description=_filter_help("cameras_in"))
    cameras_not_in: list[Int64] | None = Field(default=None, description=_filter_help("cameras_not_in"))
    person_ids: list[Int64] | None = Field(default=None, description=_filter_help("person_ids"))
    exclude_camera: Int64 | None = Field(default=None, description=_filter_help("exclude_camera"))
    time_from: FiniteFloat | None = Field(default=None, description=_filter_help("time_from"))
    time_to: FiniteFloat | None = Field(default=None, description=_filter_help("time_to"))
    key_prefix: str | None = Field(
        default=None, min_length=1, max_length=MAX_KEY_CHARS, description=_filter_help("key_prefix")
    )
    inserted_from: FiniteFloat | None = Field(default=None, description=_filter_help("inserted_from"))
    inserted_to: FiniteFloat | None = Field(default=None, description=_filter_help("inserted_to"))
    metadata: dict[str, MetadataCondition] | None = Field(default=None, description=_filter_help("metadata"))

    @model_validator(mode="after")
    def _ranges(self) -> FilterFields:
        for _, low, high in TIME_RANGES:
            start, end = getattr(self, low), getattr(self, high)
            if start is not None and end is not None and start > end:
                raise ValueError(f"{low} ({start}) is after {high} ({end})")
        return self

    def filter_values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Filters)}

    def filters(self) -> Filters | None:
        filters = Filters(**self.filter_values())
        return None if filters.is_empty else filters


class SearchOptions(TrackOptions, FilterFields):
    """Search options; the filter fields are :class:`reid.gallery.Filters`' (one vocabulary with the
    library and the CLI)."""

    k: int = Field(default=10, ge=1, le=MAX_K, description="hits (or groups) per query")
    rerank: bool = Field(
        default=False, description="k-reciprocal re-ranking of the top candidates (slower, often better)"
    )
    group_by: GroupBy | None = Field(
        default=None,
        description="collapse hits by track_id or person_id: k different tracks or people, each shown by "
        "its best-scoring crop (after filters and re-ranking)",
    )
    min_score: FiniteFloat | None = Field(default=None, description="drop hits scoring below this")
    # Deprecated names, still accepted.
    cameras: list[Int64] | None = _deprecated("cameras_in")
    exclude_cameras: list[Int64] | None = _deprecated("cameras_not_in")
    query_camera: Int64 | None = _deprecated("exclude_camera")
    exclude_same_camera: bool | None = _deprecated("exclude_camera (drops hits from query_camera)")

    @model_validator(mode="after")
    def _coherent(self) -> SearchOptions:
        for old, new in {**RENAMED_FILTERS, "exclude_same_camera": "exclude_camera"}.items():
            if getattr(self, old) not in (None, False) and getattr(self, new) is not None:
                raise ValueError(f"give {new} or its deprecated form {old}, not both")
        if self.exclude_same_camera and self.query_camera is None:
            raise ValueError("exclude_same_camera needs query_camera")
        return self

    def filter_values(self) -> dict[str, Any]:
        values = super().filter_values()
        for old, new in RENAMED_FILTERS.items():
            if getattr(self, old) is not None:
                values[new] = getattr(self, old)
        if self.exclude_same_camera:
            values["exclude_camera"] = self.query_camera
        return values


class SearchRequest(SearchOptions):
    images: list[Base64Image] | None = Field(default=None, min_length=1, description="query images in base64")
    embeddings: list[list[FiniteFloat]] | None = Field(
        default=None, min_length=1, description="query embeddings (any scale: they are L2-normalised)"
    )
    model: str | None = Field(
        default=None, description="fingerprint of the model behind `embeddings`; checked when given"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"images": [EXAMPLE_IMAGE], "k": 5, "exclude_camera": 3},
                {"embeddings": [[0.5, -0.5, 0.5, 0.5]], "k": 10, "cameras_in": [1, 2], "rerank": True},
            ]
        }
    )

    @model_validator(mode="after")
    def _one_kind_of_query(self) -> SearchRequest:
        if (self.images is None) == (self.embeddings is None):
            raise ValueError("give exactly one of images or embeddings")
        return self

    @property
    def query_count(self) -> int:
        return len(self.images or self.embeddings or ())


class SearchForm(SearchOptions):
    images: ImageFiles


_SCORE = Field(description="cosine similarity, or 1 - re-ranked distance when rerank is on")


_MATCH = Field(
    default=None,
    description="score >= the weights' threshold for REID_MATCH_FMR; null without thresholds or with rerank",
)


_HIT_FIELDS: Any = _item_model(
    "SearchHitFields", BaseModel, id=(int, ...), score=(float, _SCORE), match=(bool | None, _MATCH)
)


class SearchHit(_HIT_FIELDS):
    """One hit: its gallery id, score and match decision, and the item's fields (``reid.gallery.items``)."""


class QueryResult(BaseModel):
    index: int = Field(description="position of the query (or of the track, with tracks) in the request")
    track: str | None = Field(default=None, description="the query's track label (with tracks)")
    hits: list[SearchHit]


class SearchResponse(BaseModel):
    model: str
    results: list[QueryResult]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": EXAMPLE_MODEL,
                    "results": [
                        {
                            "index": 0,
                            "hits": [
                                {
                                    "id": 42,
                                    "key": "cam1/0001_c1s1_001051_00.jpg",
                                    "score": 0.87,
                                    "person_id": 1,
                                    "camera_id": 1,
                                    "source": "0001_c1s1_001051_00.jpg",
                                    "timestamp": 1718000000.0,
                                    "metadata": {"zone": "entrance"},
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )


# --- /gallery ------------------------------------------------------------------------------------


class ItemFields(_item_model("ItemFieldsBase", _Strict, INPUT_FIELDS)):  # type: ignore[misc]
    """The fields of an item to store: those of ``reid.gallery.items`` a caller gives, each optional."""


class GalleryItemIn(ItemFields):
    image: Base64Image


class GalleryAddRequest(_Strict):
    items: list[GalleryItemIn] = Field(min_length=1)

    @model_validator(mode="after")
    def _keys(self) -> GalleryAddRequest:
        _unique_keys(self.items)
        return self

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "image": EXAMPLE_IMAGE,
                            "key": "cam1/0001_c1s1_001051_00.jpg",
                            "person_id": 1,
                            "camera_id": 1,
                            "timestamp": 1718000000.0,
                            "metadata": {"zone": "entrance"},
                        }
                    ]
                }
            ]
        }
    )


class GalleryForm(_Strict):
    images: ImageFiles
    items: Json[list[ItemFields]] | None = Field(
        default=None,
        description="JSON array of item fields, one per image in order (source defaults to the file name)",
    )

    @model_validator(mode="after")
    def _aligned(self) -> GalleryForm:
        if self.items is not None:
            if len(self.items) != len(self.images):
                raise ValueError(f"items has {len(self.items)} entries for {len(self.images)} images")
            _unique_keys(self.items)
        return self


class GalleryAddResponse(BaseModel):
    model: str
    ids: list[int] = Field(description="gallery ids, in request order (a replaced key gets a new id)")

    model_config = ConfigDict(json_schema_extra={"examples": [{"model": EXAMPLE_MODEL, "ids": [42, 43]}]})


class GalleryItemOut(_item_model("GalleryItemOutFields", BaseModel, id=(int, ...))):  # type: ignore[misc]
    """A stored item: its gallery id, the item's fields and, when asked for, its embedding."""

    vector: list[float] | None = Field(
        default=None, description="the stored embedding, with include_vector=true"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "key": "cam1/0001_c1s1_001051_00.jpg",
                    "person_id": 1,
                    "camera_id": 1,
                    "source": None,
                    "timestamp": 1718000000.0,
                    "metadata": {"zone": "entrance"},
                    "vector": None,
                }
            ]
        }
    )


class EraseRequest(FilterFields):
    """Erase every item the filter matches (at least one condition)."""

    dry_run: bool = Field(default=False, description="count the matching items and erase nothing")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"person_ids": [17], "dry_run": True},
                {"cameras_in": [3], "time_to": 1718000000.0},
                {"key_prefix": "site-a/", "metadata": {"zone": "entrance"}},
            ]
        }
    )


class ErasureResponse(BaseModel):
    matched: int = Field(description="items the filter matched")
    erased: int = Field(description="items erased (0 on a dry run); their bytes are gone from the files")
    dry_run: bool

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"matched": 12, "erased": 12, "dry_run": False}]}
    )


class RetentionRequest(_Strict):
    """A retention policy to keep with the gallery; ``days: null`` removes it."""

    days: float | None = Field(gt=0, le=MAX_DAYS, description="keep items this many days")
    by: RetentionClock = Field(
        default="inserted",
        description="count from when an item was stored (inserted) or taken (captured: its timestamp; items "
        "without one count from when they were stored)",
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"days": 30, "by": "inserted"}, {"days": None}]}
    )

    def policy(self) -> RetentionPolicy | None:
        return None if self.days is None else RetentionPolicy(days=self.days, by=self.by)


class RetentionPolicyOut(BaseModel):
    days: float
    by: RetentionClock


class RetentionStatus(BaseModel):
    kept: RetentionPolicyOut | None = Field(description="the policy kept with the gallery")
    service: RetentionPolicyOut | None = Field(description="this service's own (REID_RETENTION_DAYS)")
    due: int = Field(description="items the policies in force would erase now")
    erased: int | None = Field(default=None, description="items erased by this change (PUT)")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"kept": {"days": 30, "by": "inserted"}, "service": None, "due": 0, "erased": 12}]
        }
    )

    @classmethod
    def of(
        cls, kept: RetentionPolicy | None, service: RetentionPolicy | None, *, due: int, erased: int | None
    ) -> RetentionStatus:
        def out(policy: RetentionPolicy | None) -> RetentionPolicyOut | None:
            return None if policy is None else RetentionPolicyOut(days=policy.days, by=policy.by)

        return cls(kept=out(kept), service=out(service), due=due, erased=erased)


class DeleteResponse(BaseModel):
    id: int
    deleted: bool

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 42, "deleted": True}]})


GALLERY_STATS_EXAMPLE = {
    "backend": "faiss",
    "count": 12936,
    "dim": 2048,
    "fingerprint": EXAMPLE_MODEL,
    "index": "Flat",
    "details": {
        "trained": True,
        "index_vectors": 12936,
        "device": "cpu",
        "disk_bytes": 212000000,
        "last_seq": 12936,
        "snapshot_seq": 12936,
    },
    "retention": [{"days": 30, "by": "inserted"}],
}


# --- ops -----------------------------------------------------------------------------------------


class Status(BaseModel):
    status: str

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})


class BatchingInfo(BaseModel):
    max_batch_size: int
    max_batch_delay_ms: float
    max_queue: int
    queued_images: int


class LimitsInfo(BaseModel):
    max_images_per_request: int
    max_request_bytes: int
    max_pixels: int


class PreprocessingInfo(BaseModel):
    """What the model expects of a crop: clients that embed elsewhere must prepare images the same way."""

    input_size: list[int] = Field(description="[height, width] every crop is resized to")
    resize: Literal["stretch"] = Field(
        description="stretch: resized straight to height×width, aspect ratio not kept, no padding or crop"
    )
    interpolation: str = Field(description="resampling filter of the resize (Pillow's, antialiased)")
    colour_order: Literal["RGB"] = Field(description="channel order the model sees")
    pixel_range: int = Field(description="1: pixels scaled to 0–1 before mean/std; 255: raw 0–255")
    mean: list[float] = Field(description="per-channel mean subtracted, in pixel_range units")
    std: list[float] = Field(description="per-channel std divided by, in pixel_range units")
    l2_normalized: bool = Field(description="embeddings are L2-normalised unless /embed asks otherwise")
    flip: bool = Field(description="flip test-time augmentation: averaged with the mirrored crop")


class WeightsInfo(BaseModel):
    name: str | None = Field(description="zoo name; null for a URL outside the zoo")
    url: str
    sha256: str
    dataset: str | None = Field(description="what the published metrics were measured on")
    metrics: dict[str, float] = Field(description="the publisher's figures, in percent")


class MatchThresholdInfo(BaseModel):
    fmr: float = Field(description="false-match rate the threshold was chosen for (REID_MATCH_FMR)")
    score: float = Field(description="cosine similarity at or above which a hit is a match")


class InfoResponse(BaseModel):
    model: str
    backbone: str
    dim: int
    device: str
    dtype: str
    runtime: str = Field(default="torch", description="torch, onnxruntime, openvino or tensorrt")
    match_threshold: MatchThresholdInfo | None = Field(
        default=None, description="the score that flags a search hit as a match; null: hits are not flagged"
    )
    input_size: list[int] = Field(description="[height, width] the images are resized to")
    flip: bool
    compile: bool
    channels_last: bool
    batching: BatchingInfo
    limits: LimitsInfo
    gallery_size: int | None = Field(description="items in the gallery; null without a gallery")
    gallery_index: str | None
    preprocessing: PreprocessingInfo
    weights: WeightsInfo | None = Field(
        default=None,
        description="where downloaded weights came from; null for local files and random weights",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": EXAMPLE_MODEL,
                    "backbone": "se_resnet50_ibn_a",
                    "dim": 2048,
                    "device": "cuda:0",
                    "dtype": "bfloat16",
                    "input_size": [256, 128],
                    "flip": False,
                    "compile": False,
                    "channels_last": True,
                    "batching": {
                        "max_batch_size": 64,
                        "max_batch_delay_ms": 3.0,
                        "max_queue": 1024,
                        "queued_images": 0,
                    },
                    "limits": {
                        "max_images_per_request": 64,
                        "max_request_bytes": 33554432,
                        "max_pixels": 40000000,
                    },
                    "gallery_size": 12936,
                    "gallery_index": "Flat",
                    "preprocessing": {
                        "input_size": [256, 128],
                        "resize": "stretch",
                        "interpolation": "bicubic",
                        "colour_order": "RGB",
                        "pixel_range": 255,
                        "mean": [123.675, 116.28, 103.53],
                        "std": [58.395, 57.12, 57.375],
                        "l2_normalized": True,
                        "flip": False,
                    },
                    "weights": {
                        "name": "fastreid/market_bot_R50-ibn",
                        "url": "https://github.com/JDAI-CV/fast-reid/releases/download/v0.1.1/market_bot_R50-ibn.pth",
                        "sha256": "0" * 64,
                        "dataset": "Market-1501",
                        "metrics": {"rank1": 94.9, "mAP": 87.6, "mINP": 64.1},
                    },
                }
            ]
        }
    )
