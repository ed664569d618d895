"""``POST /search``: nearest gallery items for query images or embeddings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from app.bodies import body_kind, form_model, json_response, parse_json, parse_multipart
from app.deps import AppSettings, Caller, Embedder, Gallery, SearchAccess
from app.inference import EmbeddingService, ImageInput
from app.openapi import error_responses, request_body
from app.routes.embed import IMAGE_ERRORS, KEY_ERRORS
from app.schemas import QueryResult, SearchForm, SearchHit, SearchOptions, SearchRequest, SearchResponse
from app.tracks import aggregate_tracks
from reid.embeddings import l2_normalize
from reid.errors import ModelMismatch
from reid.gallery import Actor, GalleryStore, Hit, RerankConfig

router = APIRouter(tags=["search"])


def unit_rows(rows: Sequence[Sequence[float]], dim: int) -> np.ndarray:
    """Client embeddings as float32 unit rows; any scale is accepted (rows are scaled before squaring,
    so huge values cannot overflow the norm)."""
    for i, row in enumerate(rows):
        if len(row) != dim:
            raise ModelMismatch(f"embedding {i} has {len(row)} values; this model's embeddings have {dim}")
    x = np.asarray(rows, dtype=np.float64)
    peak = np.abs(x).max(axis=1, keepdims=True)
    zero = np.flatnonzero(peak[:, 0] == 0)
    if len(zero):
        loc = ("body", "embeddings", int(zero[0]))
        raise RequestValidationError(
            [{"loc": loc, "msg": "an all-zero embedding has no direction", "type": "value_error"}]
        )
    return l2_normalize(x / peak)  # scaled first: squaring huge values cannot overflow


def run_search(
    gallery: GalleryStore,
    vectors: np.ndarray,
    options: SearchOptions,
    fingerprint: str,
    top_n: int,
    actor: Actor,
) -> list[list[Hit]]:
    # The gallery re-ranks each query on its own, as the CLI and the library do.
    rerank = RerankConfig(top_n=top_n) if options.rerank else None
    return gallery.search(
        vectors,
        options.k,
        options.filters(),
        fingerprint=fingerprint,
        rerank=rerank,
        group_by=options.group_by,
        min_score=options.min_score,
        actor=actor,
    )


async def read_queries(
    request: Request, embedder: EmbeddingService
) -> tuple[np.ndarray, SearchOptions, dict[str, str]]:
    """Query vectors, search options and the timing headers of embedding them (none for given vectors)."""
    images: list[ImageInput]
    options: SearchOptions
    if body_kind(request) == "json":
        body = await parse_json(request, SearchRequest)
        if body.embeddings is not None:
            if body.model is not None and body.model != embedder.fingerprint:
                raise ModelMismatch(
                    f"embeddings from model {body.model!r}; this service runs {embedder.fingerprint!r}"
                )
            embedder.check_count(len(body.embeddings))
            return unit_rows(body.embeddings, embedder.dim), body, {}
        images, options = list(body.images or ()), body
    else:
        form = form_model(SearchForm, await parse_multipart(request))
        images, options = list(form.images), form
    embedded = await embedder.embed(images)
    return embedded.vectors, options, embedded.timing_headers()


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Search the gallery",
    description=(
        "Query by images (JSON base64 or multipart files) or by embeddings (JSON); with tracks, the crops of "
        "each track form one query (their aggregated embedding). Returns the k best hits per query, best "
        "first, after filters (cameras, persons, same-camera exclusion, time ranges, key prefix, "
        "metadata); rerank=true re-orders each query's top candidates (REID_RERANK_TOP_N) by k-reciprocal "
        "distance; group_by collapses hits by track or person; min_score drops weak hits; match flags hits "
        "above the weights' threshold."
    ),
    dependencies=[SearchAccess],
    responses=error_responses(*IMAGE_ERRORS, *KEY_ERRORS),
    openapi_extra=request_body(SearchRequest, SearchForm),
)
async def search(
    request: Request, embedder: Embedder, gallery: Gallery, settings: AppSettings, caller: Caller
) -> Response:
    vectors, options, headers = await read_queries(request, embedder)
    labels: list[str | None] = [None] * len(vectors)
    if options.tracks is not None:
        track_labels, _, vectors = aggregate_tracks(vectors, options)
        labels = list(track_labels)
    hits = await asyncio.to_thread(
        run_search, gallery, vectors, options, embedder.fingerprint, settings.rerank_top_n, caller
    )
    # Re-ranked scores are not cosine similarities: the thresholds do not apply to them.
    threshold = None if options.rerank else embedder.match_threshold(settings.match_fmr)
    results = [
        QueryResult(
            index=i,
            track=label,
            hits=[
                SearchHit.model_validate(
                    {**hit.as_dict(), "match": None if threshold is None else hit.score >= threshold}
                )
                for hit in query_hits
            ],
        )
        for i, (label, query_hits) in enumerate(zip(labels, hits, strict=True))
    ]
    return json_response(SearchResponse(model=embedder.fingerprint, results=results), headers)
