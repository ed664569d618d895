"""Operations: liveness, readiness, service description and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import Embedder, OpsAccess, Service
from app.openapi import error_responses
from app.schemas import (
    BatchingInfo,
    InfoResponse,
    LimitsInfo,
    MatchThresholdInfo,
    PreprocessingInfo,
    Status,
)
from app.state import Phase
from reid.errors import NotReady

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=Status,
    summary="Liveness",
    description="200 while the process serves requests, loading included; 503 once loading has failed.",
    responses=error_responses(503),
)
async def healthz(service: Service) -> Status:
    if service.phase is Phase.FAILED:
        raise NotReady(f"the service failed to start: {service.failure}")
    return Status(status="ok")


@router.get(
    "/readyz",
    response_model=Status,
    summary="Readiness",
    description="200 once the weights are loaded and warmed up and the gallery (if any) is open; 503 before.",
    responses=error_responses(503),
)
async def readyz(service: Service) -> Status:
    service.ready_embedder()
    return Status(status="ready")


@router.get(
    "/info",
    response_model=InfoResponse,
    summary="Model, batching and gallery",
    dependencies=[OpsAccess],
    responses=error_responses(503, 401),
)
async def info(service: Service, embedder: Embedder) -> InfoResponse:
    settings = service.settings
    model = embedder.extractor.info()  # model, backbone, dim, device, dtype, input size, options
    return InfoResponse(
        **{name: value for name, value in model.items() if name in InfoResponse.model_fields},
        batching=BatchingInfo(
            max_batch_size=embedder.batcher.max_batch_size,
            max_batch_delay_ms=settings.max_batch_delay_ms,
            max_queue=embedder.batcher.max_queue,
            queued_images=embedder.batcher.queued_images,
        ),
        limits=LimitsInfo(
            max_images_per_request=settings.max_images_per_request,
            max_request_bytes=settings.max_request_bytes,
            max_pixels=embedder.preprocess.max_pixels,
        ),
        gallery_size=await asyncio.to_thread(service.gallery.count) if service.gallery else None,
        gallery_index=service.gallery.index_kind if service.gallery else None,
        preprocessing=PreprocessingInfo(
            **embedder.preprocess.contract(), l2_normalized=True, flip=embedder.extractor.options.flip
        ),
        match_threshold=_match_threshold(embedder.match_threshold(settings.match_fmr), settings.match_fmr),
    )


def _match_threshold(score: float | None, fmr: float | None) -> MatchThresholdInfo | None:
    return None if score is None or fmr is None else MatchThresholdInfo(fmr=fmr, score=score)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[OpsAccess],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"example": 'reid_batch_size_bucket{le="8.0"} 12.0'}}},
        **error_responses(401),
    },
)
async def metrics(service: Service) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
