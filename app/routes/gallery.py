"""Gallery endpoints: add (upsert by key), get, delete, stats. Once API keys are set, reads need the
``search`` scope and writes ``write``; every write is audited (erasure, retention: ``app.routes.privacy``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from app.bodies import body_kind, form_model, json_response, parse_json, parse_multipart
from app.deps import Caller, Embedder, Gallery, SearchAccess, WriteAccess
from app.inference import ImageInput
from app.openapi import error_responses, request_body
from app.routes.embed import IMAGE_ERRORS, KEY_ERRORS
from app.schemas import (
    GALLERY_STATS_EXAMPLE,
    DeleteResponse,
    GalleryAddRequest,
    GalleryAddResponse,
    GalleryForm,
    GalleryItemOut,
    ItemFields,
)
from reid.gallery import Actor, GalleryItem, GalleryStats, GalleryStore
from reid.gallery.items import INT64_MAX, fields_of

router = APIRouter(prefix="/gallery", tags=["gallery"])

ItemId = Annotated[int, Path(ge=1, le=INT64_MAX, description="gallery id, as returned by POST /gallery")]


async def read_items(request: Request) -> tuple[list[ImageInput], list[ItemFields]]:
    if body_kind(request) == "json":
        body = await parse_json(request, GalleryAddRequest)
        return [item.image for item in body.items], list(body.items)
    multipart = await parse_multipart(request)
    form = form_model(GalleryForm, multipart)
    items = form.items if form.items is not None else [ItemFields() for _ in multipart.files]
    named = [
        item.model_copy(update={"source": upload.filename}) if item.source is None else item
        for item, upload in zip(items, multipart.files, strict=True)
    ]
    return list(form.images), named


def store(gallery: GalleryStore, items: Sequence[GalleryItem], fingerprint: str, actor: Actor) -> list[int]:
    """Items with a key are upserted, the others added; ids come back in request order."""
    keyed = [i for i, item in enumerate(items) if item.key is not None]
    plain = [i for i, item in enumerate(items) if item.key is None]
    ids = [0] * len(items)
    for positions, write in ((keyed, gallery.upsert), (plain, gallery.add)):
        if positions:
            for position, new_id in zip(
                positions,
                write([items[i] for i in positions], fingerprint=fingerprint, actor=actor),
                strict=True,
            ):
                ids[position] = new_id
    return ids


@router.post(
    "",
    response_model=GalleryAddResponse,
    summary="Add crops to the gallery",
    description=(
        "Embeds the images and stores them with their fields. An item whose key already exists replaces it "
        "(and gets a new id). Multipart: 'images' file parts plus an optional 'items' JSON array."
    ),
    dependencies=[WriteAccess],
    responses=error_responses(*IMAGE_ERRORS, *KEY_ERRORS),
    openapi_extra=request_body(GalleryAddRequest, GalleryForm),
)
async def add_items(request: Request, embedder: Embedder, gallery: Gallery, caller: Caller) -> Response:
    images, fields = await read_items(request)
    embedded = await embedder.embed(images)
    items = [
        GalleryItem(vector=vector, **fields_of(f)) for vector, f in zip(embedded.vectors, fields, strict=True)
    ]
    ids = await asyncio.to_thread(store, gallery, items, embedder.fingerprint, caller)
    return json_response(GalleryAddResponse(model=embedder.fingerprint, ids=ids), embedded.timing_headers())


@router.get(
    "/stats",
    response_model=GalleryStats,
    summary="Gallery size and index",
    dependencies=[SearchAccess],
    responses={
        200: {"content": {"application/json": {"example": GALLERY_STATS_EXAMPLE}}},
        **error_responses(503, *KEY_ERRORS),
    },
)
async def stats(gallery: Gallery) -> GalleryStats:
    return await asyncio.to_thread(gallery.stats)


@router.get(
    "/{item_id}",
    response_model=GalleryItemOut,
    summary="One stored item",
    dependencies=[SearchAccess],
    responses=error_responses(404, 422, 503, *KEY_ERRORS),
)
async def get_item(
    item_id: ItemId,
    gallery: Gallery,
    caller: Caller,
    include_vector: Annotated[bool, Query(description="also return the stored embedding")] = False,
) -> GalleryItemOut:
    (record,) = await asyncio.to_thread(gallery.get, [item_id], actor=caller)
    fields = asdict(record)
    vector: np.ndarray = fields.pop("vector")
    return GalleryItemOut(**fields, vector=vector.tolist() if include_vector else None)


@router.delete(
    "/{item_id}",
    response_model=DeleteResponse,
    summary="Remove an item",
    dependencies=[WriteAccess],
    responses=error_responses(404, 422, 503, *KEY_ERRORS),
)
async def delete_item(item_id: ItemId, gallery: Gallery, caller: Caller) -> DeleteResponse:
    await asyncio.to_thread(gallery.delete, [item_id], actor=caller)
    return DeleteResponse(id=item_id, deleted=True)
