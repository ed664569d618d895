"""Choosing and opening a gallery backend: :func:`open_gallery` and the :class:`GallerySpec` value that
service settings, the CLI and batch jobs pass around."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args, overload

from reid.errors import ConfigError
from reid.gallery.faiss_store import FaissGallery
from reid.gallery.store import GalleryStore

if TYPE_CHECKING:
    from reid.gallery.milvus_store import MilvusGallery

Backend = Literal["faiss", "milvus"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
# Milvus facts the settings need without importing pymilvus.
DEFAULT_COLLECTION = "reid_gallery"
MILVUS_MAX_TOPK = 16384  # Milvus's cap on limit (+ offset) per search


@overload
def open_gallery(
    path: str | Path,
    *,
    dim: int | None = ...,
    fingerprint: str | None = ...,
    index: str | None = ...,
    train_size: int | None = ...,
    nprobe: int | None = ...,
    ef_search: int | None = ...,
    use_gpu: bool | None = ...,
    read_only: bool = ...,
    backend: Literal["faiss"] = ...,
) -> FaissGallery: ...


@overload
def open_gallery(
    path: str | Path,
    *,
    dim: int | None = ...,
    fingerprint: str | None = ...,
    index: str | None = ...,
    backend: Literal["milvus"],
    collection: str | None = ...,
) -> MilvusGallery: ...


def open_gallery(
    path: str | Path,
    *,
    dim: int | None = None,
    fingerprint: str | None = None,
    index: str | None = None,
    train_size: int | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    use_gpu: bool | None = None,
    read_only: bool = False,
    backend: Backend = "faiss",
    collection: str | None = None,
) -> FaissGallery | MilvusGallery:
    """Open (or, given ``dim``, create) the gallery at ``path``.

    ``backend="faiss"`` (default): ``path`` is a directory and ``index`` a FAISS factory string,
    ``"Flat"`` (exact) when creating and left out it means "what the gallery already uses"; see
    :meth:`FaissGallery.open`. ``backend="milvus"``: ``path`` is a Milvus URI or a local milvus-lite
    file, ``index`` is ``"FLAT"``, ``"IVF_FLAT"`` or ``"HNSW"`` and ``collection`` names the collection;
    see :meth:`MilvusGallery.open`. An existing gallery whose ``dim`` or ``fingerprint`` differs from
    the given ones raises :class:`reid.errors.ModelMismatch` naming both.
    """
    if backend == "milvus":
        faiss_only = {"train_size": train_size, "nprobe": nprobe, "ef_search": ef_search, "use_gpu": use_gpu}
        given = sorted(name for name, value in faiss_only.items() if value is not None)
        if given or read_only:
            raise ConfigError(f"the Milvus backend does not take {given or ['read_only']}")
        from reid.gallery.milvus_store import MilvusGallery

        return MilvusGallery.open(
            path, dim=dim, fingerprint=fingerprint, index=index, collection=collection or DEFAULT_COLLECTION
        )
    if backend != "faiss":
        raise ConfigError(f"unknown gallery backend {backend!r}; choose one of {list(BACKENDS)}")
    if collection is not None:
        raise ConfigError("collection= applies to the Milvus backend only")
    return FaissGallery.open(
        path,
        dim=dim,
        fingerprint=fingerprint,
        index=index,
        train_size=train_size,
        nprobe=nprobe,
        ef_search=ef_search,
        use_gpu=use_gpu,
        read_only=read_only,
    )


@dataclass(frozen=True)
class GallerySpec:
    """Where a gallery lives: ``location`` is a directory (FAISS) or a Milvus URI / milvus-lite file.

    ``collection`` (Milvus only; default ``reid_gallery``) and ``index`` as :func:`open_gallery` takes them.
    """

    location: str | Path
    backend: Backend = "faiss"
    collection: str | None = None
    index: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown gallery backend {self.backend!r}; choose one of {list(BACKENDS)}")
        if self.collection is not None and self.backend != "milvus":
            raise ConfigError("a collection name applies to the Milvus backend only")

    @property
    def is_remote(self) -> bool:
        """A server URI rather than a local path."""
        return "://" in str(self.location)

    @property
    def local_dir(self) -> Path:
        """A local folder for a job's side files (failure logs): the FAISS gallery folder, the folder of a
        milvus-lite file, or the working directory for a Milvus server."""
        if self.is_remote:
            return Path.cwd()
        return Path(self.location) if self.backend == "faiss" else Path(self.location).parent

    def open(
        self, *, dim: int | None = None, fingerprint: str | None = None, read_only: bool = False
    ) -> GalleryStore:
        """Open (or, given ``dim``, create) the gallery. ``read_only`` takes a FAISS gallery's shared lock;
        a Milvus server has no writer lock, so there it only means "do not create"."""
        if self.backend == "milvus":
            if read_only and dim is not None:
                raise ConfigError("a read-only open cannot create a gallery")
            return open_gallery(
                self.location,
                dim=dim,
                fingerprint=fingerprint,
                index=self.index,
                backend="milvus",
                collection=self.collection,
            )
        return open_gallery(
            self.location, dim=dim, fingerprint=fingerprint, index=self.index, read_only=read_only
        )

    def __str__(self) -> str:
        if self.backend == "faiss":
            return str(self.location)
        return f"milvus {self.location} (collection {self.collection or DEFAULT_COLLECTION})"
