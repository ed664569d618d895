"""The one place where errors become HTTP responses: ``{"error": code, "detail": message}``.

Domain errors (:mod:`reid.errors`) map to a status by class (the most specific class in the MRO wins);
FastAPI validation errors and Starlette ``HTTPException`` are re-shaped into the same body, and anything
else is a 500 with a generic body (its traceback is logged, never sent).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from reid.errors import (
    CheckpointError,
    ConfigError,
    GalleryError,
    ImageTooLarge,
    InvalidImage,
    ModelMismatch,
    NotFound,
    NotReady,
    QueueFull,
    ReidError,
    TooManyImages,
    UnsupportedImage,
)

logger = logging.getLogger(__name__)

# Keyed by class; looked up along the raised error's MRO so subclasses map by their closest ancestor.
STATUS_BY_ERROR: Mapping[type[ReidError], int] = {
    UnsupportedImage: 415,
    ImageTooLarge: 413,  # a size limit, like the request-size limit: "too large" is always 413
    InvalidImage: 422,
    TooManyImages: 413,
    QueueFull: 429,
    NotReady: 503,
    NotFound: 404,
    ModelMismatch: 422,
    GalleryError: 409,
    ConfigError: 422,  # at request time only reachable through parameters the client chose
    CheckpointError: 500,
    ReidError: 400,
}
_MAX_LISTED_ERRORS = 5


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=dict(headers or {}))


def status_of(exc: ReidError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    raise AssertionError("ReidError is in every domain error's MRO")


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


async def _reid_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReidError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, QueueFull):
        headers = _retry_after(exc.retry_after_s)
    elif isinstance(exc, NotReady):
        headers = _retry_after(1.0)
    if status == 500:  # a server-side fault (e.g. a checkpoint); 503 and 429 are expected load states
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(status, exc.code, str(exc), headers)


def _location(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """``body.images[3]: Input should be a valid string; ...`` — the first few problems, located."""
    parts = [f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:_MAX_LISTED_ERRORS]]
    if len(errors) > _MAX_LISTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_LISTED_ERRORS} more")
    return "; ".join(parts) or "invalid request"


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_request", describe_validation_errors(exc.errors()))


def http_status_code(status: int) -> str:
    """``404 → "not_found"``, from the standard reason phrase."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "http_error"
    return phrase.lower().replace(" ", "_").replace("-", "_")


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(exc.status_code, http_status_code(exc.status_code), detail, exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client hung up while sending its body; nobody reads this answer. 499 as nginx logs it.
    return error_response(499, "client_closed_request", "the client closed the connection")


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ReidError, _reid_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
