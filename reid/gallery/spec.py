"""Opening a gallery: :func:`open_gallery` and the :class:`GallerySpec` value that service settings, the
CLI and batch jobs pass around."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid.errors import ConfigError
from reid.gallery.core import GalleryStore, StoreOptions
from reid.gallery.registry import DEFAULT_COLLECTION, Backend, check_backend, storage_class
from reid.gallery.storage import OpenRequest


def open_gallery(
    path: str | Path,
    *,
    dim: int | None = None,
    fingerprint: str | None = None,
    index: str | None = None,
    backend: Backend = "faiss",
    store: StoreOptions | None = None,
    **options: Any,
) -> GalleryStore:
    """Open (or, given ``dim``, create) the gallery at ``path`` on ``backend``.

    ``backend="faiss"`` (default): ``path`` is a directory and ``index`` a FAISS factory string,
    ``"Flat"`` (exact) when creating and left out it means "what the gallery already uses"; ``options``:
    ``train_size``, ``nprobe``, ``ef_search``, ``use_gpu``, ``read_only``, ``autosave`` (see
    :meth:`~reid.gallery.backends.faiss.storage.FaissStorage.open`). ``backend="milvus"``: ``path`` is a
    Milvus URI or a local milvus-lite file, ``index`` is ``"FLAT"``, ``"IVF_FLAT"`` or ``"HNSW"``;
    ``options``: ``collection``. An option of another backend raises :class:`ConfigError`. An existing
    gallery whose ``dim`` or ``fingerprint`` differs from the given ones raises
    :class:`reid.errors.ModelMismatch` naming both; one created without a fingerprint records the
    first one given while it is empty. ``store`` sets the audit log, an extra retention policy and the
    clock (:class:`~reid.gallery.core.StoreOptions`).
    """
    storage = storage_class(backend)
    given = {name: value for name, value in options.items() if value is not None}
    foreign = sorted(set(given) - storage.options)
    if foreign:
        raise ConfigError(f"the {backend} backend does not take {foreign}")
    return GalleryStore(
        storage.open(OpenRequest(path, dim, fingerprint, index), **given),
        dim=dim,
        fingerprint=fingerprint,
        options=store,
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
        check_backend(self.backend)
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
        self,
        *,
        dim: int | None = None,
        fingerprint: str | None = None,
        read_only: bool = False,
        store: StoreOptions | None = None,
    ) -> GalleryStore:
        """Open (or, given ``dim``, create) the gallery. ``read_only`` takes a FAISS gallery's shared lock;
        a Milvus server has no writer lock, so there it only means "do not create"."""
        return open_gallery(
            self.location,
            dim=dim,
            fingerprint=fingerprint,
            index=self.index,
            backend=self.backend,
            read_only=read_only,
            collection=self.collection,
            store=store,
        )

    def __str__(self) -> str:
        if self.backend == "faiss":
            return str(self.location)
        return f"milvus {self.location} (collection {self.collection or DEFAULT_COLLECTION})"
