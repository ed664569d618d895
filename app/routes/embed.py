"""``POST /embed``: images → embeddings, in input order."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.bodies import body_kind, form_model, json_response, parse_json, parse_multipart
from app.deps import EmbedAccess, Embedder
from app.inference import ImageInput
from app.openapi import error_responses, request_body
from app.schemas import (
    Embedding,
    EmbedForm,
    EmbedOptions,
    EmbedRequest,
    EmbedResponse,
    EncodingFormat,
    TrackEmbedding,
)
from app.tracks import aggregate_tracks

router = APIRouter(tags=["embeddings"])

# What any endpoint that embeds images can answer besides 200, and what a key check adds.
IMAGE_ERRORS = (413, 415, 422, 429, 503)
KEY_ERRORS = (401, 403)


def encode_vector(vector: np.ndarray, encoding_format: EncodingFormat) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.tolist()


async def read_images(request: Request) -> tuple[list[ImageInput], EmbedOptions]:
    if body_kind(request) == "json":
        body = await parse_json(request, EmbedRequest)
        return list(body.images), body
    form = form_model(EmbedForm, await parse_multipart(request))
    return list(form.images), form


@router.post(
    "/embed",
    response_model=EmbedResponse,
    summary="Embed person crops",
    description=(
        "One or many images as JSON (base64) or multipart files. Returns one embedding per image, in order, "
        "with the model fingerprint; with tracks, also one aggregated embedding per track. Headers "
        "x-decode-time, x-queue-time, x-inference-time (ms) and "
        "x-batch-size tell where the time went."
    ),
    dependencies=[EmbedAccess],
    responses=error_responses(*IMAGE_ERRORS, *KEY_ERRORS),
    openapi_extra=request_body(EmbedRequest, EmbedForm),
)
async def embed(request: Request, embedder: Embedder) -> Response:
    images, options = await read_images(request)
    result = await embedder.embed(images, normalize=options.normalize)
    fmt = options.encoding_format
    tracks = None
    if options.tracks is not None:
        labels, sizes, matrix = aggregate_tracks(result.vectors, options)
        tracks = [
            TrackEmbedding(track=label, size=size, embedding=encode_vector(vector, fmt))
            for label, size, vector in zip(labels, sizes, matrix, strict=True)
        ]
    response = EmbedResponse(
        model=embedder.fingerprint,
        dim=embedder.dim,
        encoding_format=fmt,
        data=[Embedding(index=i, embedding=encode_vector(v, fmt)) for i, v in enumerate(result.vectors)],
        tracks=tracks,
    )
    return json_response(response, result.timing_headers())
