"""What the running service holds, on ``app.state.service``: settings, metrics and, once loaded, the model."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.inference import EmbeddingService
from app.security import KeyRing
from app.settings import Settings
from reid.errors import NotFound, NotReady
from reid.gallery import GalleryStore
from reid.telemetry import Metrics


class Phase(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class ServiceState:
    """Filled in by the lifespan's loader; routes reach it through the dependencies in ``app.deps``."""

    settings: Settings
    metrics: Metrics
    keys: KeyRing
    phase: Phase = Phase.LOADING
    failure: str | None = None
    embedder: EmbeddingService | None = None
    gallery: GalleryStore | None = None

    def ready_embedder(self) -> EmbeddingService:
        if self.phase is Phase.FAILED:
            raise NotReady(f"the service failed to start: {self.failure}")
        if self.phase is not Phase.READY or self.embedder is None:
            raise NotReady("the model is still loading")
        return self.embedder

    def ready_gallery(self) -> GalleryStore:
        self.ready_embedder()
        if self.gallery is None:
            raise NotFound("this service runs without a gallery (REID_GALLERY_DIR is empty)")
        return self.gallery
