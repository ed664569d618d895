"""``create_app(settings)``: the FastAPI application and its lifespan.

Start-up happens in a background task so the server answers ``/healthz`` while the weights load:
load the extractor, warm it up (one forward per batch shape), open the gallery (which applies its
retention policies), start the dynamic batcher and the periodic retention sweep; only then does
``/readyz`` turn 200. Shutdown undoes it in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import NoReturn

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
from reid.gallery import Actor, GalleryStore
from reid.telemetry import Metrics

logger = logging.getLogger(__name__)

EXIT_START_FAILED = 3  # uvicorn's own status for "Application startup failed"

DESCRIPTION = """Person re-identification: embed person crops, search and manage a gallery.

Image endpoints take JSON (base64 images) or multipart/form-data (files in `images` parts).
Errors are `{"error": code, "detail": message}`."""


async def sweep_periodically(gallery: GalleryStore, every_s: float) -> None:
    """Apply the gallery's retention policies every ``every_s`` seconds until cancelled."""
    actor = Actor(via="retention (periodic)")
    while True:
        await asyncio.sleep(every_s)
        try:
            erasure = await asyncio.to_thread(gallery.sweep, actor=actor)
        except Exception:  # the next sweep tries again; the service keeps serving
            logger.exception("retention sweep failed")
            continue
        if erasure.erased:
            logger.info("retention: erased %d expired item(s)", erasure.erased)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def start_service(
    service: ServiceState, cleanup: contextlib.AsyncExitStack, extractor: Extractor | None
) -> None:
    """Bring the service to READY, registering every resource's release on ``cleanup`` as it is made.

    On failure the phase becomes FAILED and ``service.failure`` names the step and its cause.
    """
    settings = service.settings
    step = "starting"
    try:
        if extractor is None:
            weights = settings.weights_source()
            step = f"loading weights {weights or '(random init)'}"
            extractor = await asyncio.to_thread(
                load_extractor, weights, options=settings.engine_options(), zoo=settings.zoo_options()
            )
            cleanup.callback(extractor.close)
        step = "warming up the model"
        await asyncio.to_thread(extractor.warmup, settings.warmup_batch_sizes())
        gallery = None
        spec = settings.gallery_spec()
        if spec is not None:
            step = f"opening gallery {spec}"
            gallery = await asyncio.to_thread(
                spec.open,
                dim=extractor.dim,
                fingerprint=extractor.fingerprint,
                store=settings.store_options(),
            )
            cleanup.callback(gallery.close)
            sweeper = asyncio.get_running_loop().create_task(
                sweep_periodically(gallery, settings.retention_interval_s)
            )
            cleanup.push_async_callback(_cancel, sweeper)  # before the gallery closes
        step = "starting the batcher"
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
            service.metrics,
            max_images=settings.max_images_per_request,
            max_pixels=settings.max_pixels,
            decode_workers=settings.decode_workers,
        )
        cleanup.callback(embedder.close)
        batcher.start()
        cleanup.push_async_callback(batcher.stop)
    except Exception as exc:
        logger.exception("start-up failed while %s", step)
        service.phase, service.failure = Phase.FAILED, f"{step}: {type(exc).__name__}: {exc}"
        return
    service.embedder, service.gallery, service.phase = embedder, gallery, Phase.READY
    logger.info(
        "ready: model %s (%d-d) on %s, gallery %s",
        extractor.fingerprint,
        extractor.dim,
        extractor.device,
        spec or "none",
    )


def _stop_server() -> None:
    """Ask the server (uvicorn) to shut down gracefully, the supervisor too when this is one of its
    workers, so an orchestrator sees the failure instead of a process that is never ready."""
    if multiprocessing.parent_process() is not None:  # a worker of `reid serve --workers N`
        os.kill(os.getppid(), signal.SIGTERM)
    signal.raise_signal(signal.SIGTERM)


def _exit_start_failed(failure: str) -> NoReturn:
    """End the process after shutdown, with the cause as the last line a terminal user sees."""
    first_line = failure.splitlines()[0]  # the traceback is in the log already
    print(f"error: start-up failed while {first_line}", file=sys.stderr, flush=True)
    os._exit(EXIT_START_FAILED)  # uvicorn would exit 0


def create_app(
    settings: Settings | None = None,
    *,
    extractor: Extractor | None = None,
    exit_on_start_failure: bool = False,
) -> FastAPI:
    """The service. ``extractor`` replaces loading ``settings.weights`` (tests, embedding in another
    program); the caller keeps ownership of it. ``exit_on_start_failure``: a failed start-up shuts the
    server down and ends the process with status :data:`EXIT_START_FAILED` (``reid serve``); otherwise
    the service stays up answering 503 (an application embedding it decides)."""
    settings = settings if settings is not None else Settings()
    service = ServiceState(settings=settings, metrics=Metrics(), keys=settings.key_ring())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as cleanup:

            async def start() -> None:
                await start_service(service, cleanup, extractor)
                if exit_on_start_failure and service.failure is not None:
                    _stop_server()

            loader = asyncio.get_running_loop().create_task(start())
            try:
                yield
            finally:
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
                service.phase = Phase.LOADING
        if exit_on_start_failure and service.failure is not None:
            _exit_start_failed(service.failure)  # after the cleanup above

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


def serve_app() -> FastAPI:
    """The application ``reid serve`` runs (a uvicorn factory): settings from ``REID_*``, and a failed
    start-up ends the process."""
    return create_app(exit_on_start_failure=True)
