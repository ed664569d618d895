"""Request and response bodies, with the examples shown in the OpenAPI documentation.

JSON requests carry images as base64 text (``*Request`` models); the same endpoints take
``multipart/form-data`` (``*Form`` models) with image files in ``images`` parts and the other fields as
text fields (see ``app.bodies``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Json, model_validator

from reid.gallery import Filters

INT64_MAX = 2**63 - 1
MAX_K = 1000
EXAMPLE_MODEL = "se_resnet50_ibn_a-3f1c9a7be20d4c58"
# A 1×1 white PNG, so the examples can be sent as they are.
EXAMPLE_IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"

Int64 = Annotated[int, Field(ge=-(2**63), le=INT64_MAX)]
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


def _unique_keys(items: Sequence[ItemFields]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.key is not None and item.key in seen:
            raise ValueError(f"item {i}: key {item.key!r} appears more than once")
        if item.key is not None:
            seen.add(item.key)


def _as_set(values: list[int] | None) -> frozenset[int] | None:
    return None if values is None else frozenset(values)


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


class EmbedOptions(_Strict):
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


class EmbedResponse(BaseModel):
    model: str = Field(description="fingerprint of the model that computed the embeddings")
    dim: int
    encoding_format: EncodingFormat
    data: list[Embedding]

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


class SearchOptions(_Strict):
    k: int = Field(default=10, ge=1, le=MAX_K, description="hits per query")
    rerank: bool = Field(
        default=False, description="k-reciprocal re-ranking of the top candidates (slower, often better)"
    )
    cameras: list[Int64] | None = Field(default=None, description="keep only hits from these cameras")
    exclude_cameras: list[Int64] | None = Field(default=None, description="drop hits from these cameras")
    person_ids: list[Int64] | None = Field(default=None, description="keep only hits of these persons")
    time_from: FiniteFloat | None = Field(
        default=None, description="keep hits with timestamp >= this (POSIX seconds)"
    )
    time_to: FiniteFloat | None = Field(
        default=None, description="keep hits with timestamp <= this (POSIX seconds)"
    )
    query_camera: Int64 | None = Field(default=None, description="camera that took the query images")
    exclude_same_camera: bool = Field(
        default=False, description="drop hits from query_camera (the re-ID protocol)"
    )

    @model_validator(mode="after")
    def _coherent(self) -> SearchOptions:
        if self.time_from is not None and self.time_to is not None and self.time_from > self.time_to:
            raise ValueError(f"time_from ({self.time_from}) is after time_to ({self.time_to})")
        if self.exclude_same_camera and self.query_camera is None:
            raise ValueError("exclude_same_camera needs query_camera")
        return self

    def filters(self) -> Filters | None:
        filters = Filters(
            cameras_in=_as_set(self.cameras),
            cameras_not_in=_as_set(self.exclude_cameras),
            person_ids=_as_set(self.person_ids),
            exclude_camera=self.query_camera if self.exclude_same_camera else None,
            time_from=self.time_from,
            time_to=self.time_to,
        )
        return None if filters.is_empty else filters


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
                {"images": [EXAMPLE_IMAGE], "k": 5, "query_camera": 3, "exclude_same_camera": True},
                {"embeddings": [[0.5, -0.5, 0.5, 0.5]], "k": 10, "cameras": [1, 2], "rerank": True},
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


class SearchHit(BaseModel):
    id: int
    key: str | None
    score: float = Field(description="cosine similarity, or 1 - re-ranked distance when rerank is on")
    person_id: int | None
    camera_id: int | None
    source: str | None
    timestamp: float | None
    metadata: dict[str, Any]


class QueryResult(BaseModel):
    index: int = Field(description="position of the query in the request")
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


class ItemFields(_Strict):
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="your unique id; an existing key is replaced (upsert)",
    )
    person_id: Int64 | None = None
    camera_id: Int64 | None = None
    source: str | None = Field(
        default=None, max_length=4096, description="where the crop came from (multipart: file name)"
    )
    timestamp: FiniteFloat | None = Field(default=None, description="POSIX seconds")
    metadata: Metadata = Field(default_factory=dict, description="any JSON object, returned with hits")


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


class GalleryItemOut(BaseModel):
    id: int
    key: str | None
    person_id: int | None
    camera_id: int | None
    source: str | None
    timestamp: float | None
    metadata: dict[str, Any]
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


class DeleteResponse(BaseModel):
    id: int
    deleted: bool

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 42, "deleted": True}]})


GALLERY_STATS_EXAMPLE = {
    "count": 12936,
    "dim": 2048,
    "fingerprint": EXAMPLE_MODEL,
    "index": "Flat",
    "trained": True,
    "index_vectors": 12936,
    "device": "cpu",
    "disk_bytes": 212000000,
    "last_seq": 12936,
    "snapshot_seq": 12936,
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


class InfoResponse(BaseModel):
    model: str
    backbone: str
    dim: int
    device: str
    dtype: str
    runtime: str = Field(default="torch", description="torch, onnxruntime, openvino or tensorrt")
    input_size: list[int] = Field(description="[height, width] the images are resized to")
    flip: bool
    compile: bool
    channels_last: bool
    batching: BatchingInfo
    limits: LimitsInfo
    gallery_size: int | None = Field(description="items in the gallery; null without a gallery")
    gallery_index: str | None

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
                }
            ]
        }
    )
