"""``create_app(settings)``: the FastAPI application and its lifespan.

Start-up happens in a background task so the server answers ``/healthz`` while the weights load:
load the extractor, warm it up (one forward per batch shape), open the gallery, start the dynamic
batcher; only then does ``/readyz`` turn 200. Shutdown undoes it in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.errors import install_error_handlers
from app.inference import EmbeddingService
from app.middleware import BodySizeLimit, RequestMetrics
from app.openapi import install_openapi
from app.routes import ROUTERS
from app.settings import Settings
from app.state import Phase, ServiceState
from reid import __version__
from reid.batching import DynamicBatcher
from reid.engine import Extractor, load_extractor
from reid.metrics import Metrics

logger = logging.getLogger(__name__)

DESCRIPTION = """Person re-identification: embed person crops, search and manage a gallery.

Image endpoints take JSON (base64 images) or multipart/form-data (files in `images` parts).
Errors are `{"error": code, "detail": message}`."""


async def start_service(
    service: ServiceState, cleanup: contextlib.AsyncExitStack, extractor: Extractor | None
) -> None:
    """Bring the service to READY, registering every resource's release on ``cleanup`` as it is made."""
    settings = service.settings
    try:
        if extractor is None:
            extractor = await asyncio.to_thread(
                load_extractor,
                settings.weights,
                options=settings.engine_options(),
                zoo=settings.zoo_options(),
            )
            cleanup.callback(extractor.close)
        await asyncio.to_thread(extractor.warmup, settings.warmup_batch_sizes())
        gallery = None
        spec = settings.gallery_spec()
        if spec is not None:
            gallery = await asyncio.to_thread(spec.open, dim=extractor.dim, fingerprint=extractor.fingerprint)
            cleanup.callback(gallery.close)
        batcher = DynamicBatcher(
            extractor,
            max_batch_size=settings.max_batch_size,
            max_delay_ms=settings.max_batch_delay_ms,
            max_queue=settings.max_queue,
            metrics=service.metrics,
        )
        embedder = EmbeddingService(
            extractor,
            batcher,
            max_images=settings.max_images_per_request,
            max_pixels=settings.max_pixels,
            decode_workers=settings.decode_workers,
        )
        cleanup.callback(embedder.close)
        batcher.start()
        cleanup.push_async_callback(batcher.stop)
    except Exception as exc:
        logger.exception("start-up failed")
        service.phase, service.failure = Phase.FAILED, f"{type(exc).__name__}: {exc}"
        return
    service.embedder, service.gallery, service.phase = embedder, gallery, Phase.READY
    logger.info(
        "ready: model %s (%d-d) on %s, gallery %s",
        extractor.fingerprint,
        extractor.dim,
        extractor.device,
        spec or "none",
    )


def create_app(settings: Settings | None = None, *, extractor: Extractor | None = None) -> FastAPI:
    """The service. ``extractor`` replaces loading ``settings.weights`` (tests, embedding in another
    program); the caller keeps ownership of it."""
    settings = settings if settings is not None else Settings()
    service = ServiceState(settings=settings, metrics=Metrics())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as cleanup:
            loader = asyncio.get_running_loop().create_task(start_service(service, cleanup, extractor))
            try:
                yield
            finally:
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
                service.phase = Phase.LOADING

    app = FastAPI(title="reid", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    install_openapi(app)
    for router in ROUTERS:
        app.include_router(router)
    # Added last = outermost: metrics see every response, the size limit's 413 included.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestMetrics, metrics=service.metrics)
    return app
