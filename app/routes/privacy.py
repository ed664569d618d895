"""Privacy endpoints (scope ``admin``, audited): erase what a filter matches, and show or set the retention
policy kept with the gallery. They live beside the data so that an operator can act while the service
holds the gallery (a FAISS gallery has one writer process: the CLI would have to stop the service)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.deps import AdminAccess, Caller, Gallery
from app.openapi import error_responses
from app.routes.embed import KEY_ERRORS
from app.schemas import EraseRequest, ErasureResponse, RetentionRequest, RetentionStatus
from reid.gallery import Actor, Erasure, Filters, GalleryStore, RetentionPolicy

router = APIRouter(prefix="/gallery", tags=["privacy"], dependencies=[AdminAccess])
ERRORS = error_responses(422, 503, *KEY_ERRORS)


def _erasure(erasure: Erasure) -> ErasureResponse:
    return ErasureResponse(matched=erasure.matched, erased=erasure.erased, dry_run=erasure.dry_run)


@router.post(
    "/erase",
    response_model=ErasureResponse,
    summary="Erase every item a filter matches",
    description=(
        "Removes the matching items (persons, cameras, key prefix, capture or insertion time, metadata) and "
        "leaves none of their bytes in the gallery's files: on the FAISS backend when this returns; on "
        "Milvus after compaction and the server's garbage collection (see the README). dry_run counts "
        "without erasing."
    ),
    responses=ERRORS,
)
async def erase(body: EraseRequest, gallery: Gallery, caller: Caller) -> ErasureResponse:
    filters = body.filters() or Filters()  # an empty filter is refused by the gallery (422)
    return _erasure(await asyncio.to_thread(gallery.erase, filters, dry_run=body.dry_run, actor=caller))


def _status(gallery: GalleryStore, caller: Actor, erased: int | None) -> RetentionStatus:
    """The policies in force and how many items they would erase now."""
    service = gallery.options.retention  # REID_RETENTION_DAYS, given to the gallery as it opened
    due = gallery.sweep(dry_run=True, actor=caller).matched
    return RetentionStatus.of(gallery.retention, service, due=due, erased=erased)


@router.get(
    "/retention",
    response_model=RetentionStatus,
    summary="The retention policies in force",
    description="The policy kept with the gallery, the service's own (REID_RETENTION_DAYS) and how many "
    "items they would erase now (the periodic sweep erases them; PUT applies a change at once).",
    responses=ERRORS,
)
async def retention(gallery: Gallery, caller: Caller) -> RetentionStatus:
    return await asyncio.to_thread(_status, gallery, caller, None)


def _keep(gallery: GalleryStore, policy: RetentionPolicy | None, caller: Actor) -> RetentionStatus:
    gallery.set_retention(policy, actor=caller)
    erased = gallery.sweep(actor=caller).erased
    return _status(gallery, caller, erased)


@router.put(
    "/retention",
    response_model=RetentionStatus,
    summary="Keep a retention policy with the gallery",
    description="Stores the policy with the gallery (every process that opens it for writing applies it; "
    "days: null removes it) and erases what the policies in force have expired, at once.",
    responses=ERRORS,
)
async def keep_retention(body: RetentionRequest, gallery: Gallery, caller: Caller) -> RetentionStatus:
    return await asyncio.to_thread(_keep, gallery, body.policy(), caller)
