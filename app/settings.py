"""Service settings, read from ``REID_*`` environment variables (and ``reid serve`` flags, which set them)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.security import ApiKeySpec, KeyRing, key_ring, read_secret_file
from reid.engine import DEFAULT_WEIGHTS_DIR, Dtype, EngineOptions, RuntimeChoice, default_weights
from reid.gallery import (
    DEFAULT_COLLECTION,
    MILVUS_MAX_TOPK,
    Backend,
    GallerySpec,
    RetentionPolicy,
    StoreOptions,
)
from reid.gallery.retention import MAX_DAYS, RetentionClock
from reid.zoo.options import ZooOptions

MiB = 1024 * 1024


ENGINE_OPTIONS = {option.name: option for option in dataclasses.fields(EngineOptions)}


def _engine_option(name: str, **constraints: Any) -> Any:
    """A setting that is an engine option: its default and description come from its declaration."""
    option = ENGINE_OPTIONS[name]
    return Field(default=option.default, description=option.metadata["help"], **constraints)


class Settings(BaseSettings):
    """Every field ``name`` is read from ``REID_<NAME>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="REID_", frozen=True, extra="ignore")
    _keys: KeyRing = PrivateAttr()

    # --- model ------------------------------------------------------------------------------------
    weights: str | None = Field(
        default=str(DEFAULT_WEIGHTS_DIR),
        description="checkpoint file or a folder holding one, a zoo name (reid weights list) or an https "
        "URL; unset: ./weights when that folder exists; an empty folder, '' or no ./weights: random weights "
        "(warns)",
    )
    home: Path | None = Field(
        default=None, description="cache of downloaded weights; default $XDG_CACHE_HOME/reid or ~/.cache/reid"
    )
    offline: bool = Field(default=False, description="never download: zoo names and URLs from the cache only")
    zoo_file: Path | None = Field(
        default=None, description="JSON file of extra zoo entries (format of reid/zoo/models.json)"
    )
    # Engine options: declared (default and help) once, in reid.engine.EngineOptions.
    runtime: RuntimeChoice = _engine_option("runtime")
    device: str = _engine_option("device")
    dtype: Dtype = _engine_option("dtype")
    channels_last: bool = _engine_option("channels_last")
    fold_bn: bool = _engine_option("fold_bn")
    compile: bool = _engine_option("compile")
    cuda_graphs: bool = _engine_option("cuda_graphs")
    flip: bool = _engine_option("flip")
    # --- batching and limits ------------------------------------------------------------------------
    max_batch_size: int = _engine_option("max_batch_size", ge=1)
    max_batch_delay_ms: float = Field(
        default=3.0, ge=0, description="how long the first request of a batch waits for others to join"
    )
    max_queue: int = Field(
        default=1024, ge=1, description="images allowed to wait for the model; more get 429"
    )
    max_images_per_request: int = Field(default=64, ge=1, description="images in one request; more get 413")
    max_request_bytes: int = Field(
        default=32 * MiB, ge=1, description="request body size; larger bodies get 413"
    )
    max_pixels: int = Field(
        default=40_000_000, ge=1, description="width × height of one decoded image; more get 413"
    )
    gpu_decode: bool = _engine_option("gpu_decode")
    decode_workers: int | None = Field(
        default=None, ge=1, description="image decoding threads; default min(8, CPUs)"
    )
    # --- gallery ----------------------------------------------------------------------------------
    gallery_backend: Backend = Field(
        default="faiss",
        description="gallery store: faiss (a local folder, REID_GALLERY_DIR) or milvus (REID_MILVUS_URI)",
    )
    gallery_dir: Path | None = Field(
        default=Path("galleries/default"),
        description="FAISS gallery folder, created if missing; '' runs without a gallery (embeddings only)",
    )
    milvus_uri: str | None = Field(
        default=None,
        description="Milvus server URI (http://milvus:19530) or a local milvus-lite file; needed by the "
        "milvus backend",
    )
    milvus_collection: str = Field(
        default=DEFAULT_COLLECTION, min_length=1, description="Milvus collection holding the gallery"
    )
    index: str | None = Field(
        default=None,
        min_length=1,
        description="index for a new gallery: a FAISS factory string (Flat, HNSW32, IVF1024,Flat...) or a "
        "Milvus index type (FLAT, IVF_FLAT, HNSW); default: exact, or what an existing gallery uses",
    )
    rerank_top_n: int = Field(default=100, ge=1, description="candidates per query that re-ranking reorders")
    match_fmr: float | None = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="false-match rate whose threshold (stored in the weights' manifest by reid eval "
        "--save-thresholds) flags search hits match: true|false; '' or a rate the manifest lacks: no flags",
    )
    # --- access -----------------------------------------------------------------------------------
    api_key: SecretStr | None = Field(
        default=None,
        description="one API key with every scope ('default'); once any key is set, every data endpoint "
        "needs 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
    )
    api_key_file: Path | None = Field(
        default=None, description="REID_API_KEY read from a file (a Docker secret) instead"
    )
    api_keys: list[ApiKeySpec] = Field(
        default_factory=list,
        description='JSON list of named keys with scopes: [{"name": "indexer", "key" or "key_file": ..., '
        '"scopes": ["embed", "write"]}]; scopes: embed, search (and read items), write, admin',
    )
    protect_ops: bool = Field(
        default=False, description="/info and /metrics need a key too (any scope); /healthz, /readyz never"
    )
    # --- privacy ----------------------------------------------------------------------------------
    retention_days: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DAYS,
        description="erase items older than this many days, at start and every REID_RETENTION_INTERVAL_S; "
        "a policy kept with the gallery (reid gallery retention) applies too; '' none",
    )
    retention_by: RetentionClock = Field(
        default="inserted",
        description="retention counts from when an item was stored (inserted) or taken (captured: its "
        "timestamp; items without one count from when they were stored)",
    )
    retention_interval_s: float = Field(
        default=3600, gt=0, description="how often the running service applies retention"
    )
    audit_log: Path | None = Field(
        default=None,
        description="the audit log (JSON lines); default: audit.jsonl in the FAISS gallery folder, beside a "
        "milvus-lite file, or reid-<collection>.audit.jsonl in the working directory for a Milvus server",
    )
    audit_searches: bool = Field(
        default=False,
        description="log every search and item read too (key name, filter, k, ids; never images or vectors)",
    )

    @field_validator(
        "weights",
        "home",
        "zoo_file",
        "gallery_dir",
        "milvus_uri",
        "match_fmr",
        "api_key_file",
        "retention_days",
        "audit_log",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # "" means "none" (random weights, no gallery, no Milvus, no match flags), not the current folder.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("weights", mode="before")
    @classmethod
    def _path_is_text(cls, value: object) -> object:
        # A str rather than a Path, so that URLs keep their "//"; a Path given in code still works.
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    def key_ring(self) -> KeyRing:
        """The keys the service accepts, read (key files included) when the settings were loaded."""
        return self._keys

    @model_validator(mode="after")
    def _read_keys(self) -> Settings:
        # Once, now: a bad key file or a duplicate key fails the start, not the first request.
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("give REID_API_KEY or REID_API_KEY_FILE, not both")
        single = self.api_key.get_secret_value() if self.api_key is not None else None
        if self.api_key_file is not None:
            single = read_secret_file(self.api_key_file)
        self._keys = key_ring(single, self.api_keys)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.max_images_per_request > self.max_queue:
            raise ValueError(
                f"max_images_per_request ({self.max_images_per_request}) exceeds max_queue "
                f"({self.max_queue}): such a request could never be queued"
            )
        if self.gallery_backend == "milvus":
            if self.milvus_uri is None:
                raise ValueError("the milvus gallery backend needs REID_MILVUS_URI (a server URI or a file)")
            if self.rerank_top_n > MILVUS_MAX_TOPK:
                raise ValueError(f"rerank_top_n above Milvus's limit of {MILVUS_MAX_TOPK} hits per search")
        return self

    def gallery_spec(self) -> GallerySpec | None:
        """Where the gallery lives; ``None``: the service runs without one (FAISS, empty REID_GALLERY_DIR)."""
        if self.gallery_backend == "milvus":
            assert self.milvus_uri is not None  # checked by _consistent
            return GallerySpec(
                self.milvus_uri, backend="milvus", collection=self.milvus_collection, index=self.index
            )
        return GallerySpec(self.gallery_dir, index=self.index) if self.gallery_dir is not None else None

    def store_options(self) -> StoreOptions:
        """How the service's gallery audits and retains."""
        retention = None
        if self.retention_days is not None:
            retention = RetentionPolicy(days=self.retention_days, by=self.retention_by)
        return StoreOptions(audit_log=self.audit_log, audit_searches=self.audit_searches, retention=retention)

    def weights_source(self) -> str | None:
        """The weights to load: REID_WEIGHTS when it was given (a missing path is then an error), else the
        default folder when it exists, else ``None`` (random weights, as every CLI command does)."""
        if "weights" in self.model_fields_set:
            return self.weights
        default = default_weights()
        return str(default) if default is not None else None

    def engine_options(self) -> EngineOptions:
        return EngineOptions(**{name: getattr(self, name) for name in ENGINE_OPTIONS})

    def zoo_options(self) -> ZooOptions:
        return ZooOptions(home=self.home, offline=self.offline, zoo_file=self.zoo_file)

    def warmup_batch_sizes(self) -> tuple[int, ...]:
        """One forward per shape a batch can take at the extremes (a single image, a full batch)."""
        return tuple(sorted({1, self.max_batch_size}))
