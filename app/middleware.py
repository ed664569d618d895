"""Pure-ASGI middleware: the request-size limit and per-route latency metrics.

Both are plain ASGI (not ``BaseHTTPMiddleware``) so they add no task or body copy per request.
"""

from __future__ import annotations

import contextlib
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response
from reid.telemetry import Metrics


class _BodyTooLargeError(Exception):
    """Raised from ``receive`` once the body passes the limit; the middleware answers 413."""


class BodySizeLimit:
    """413 for bodies over ``max_bytes``: at once when ``Content-Length`` says so, otherwise as soon as
    the streamed (e.g. chunked) bytes pass the limit, so an oversized body is never read in full.

    Whatever the app does with the interrupted read (FastAPI turns some parse failures into a 400), its
    response is replaced by the 413 unless it had already started.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ASGIApp:
        return error_response(
            413, "payload_too_large", f"request body exceeds the limit of {self.max_bytes:,} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's reaction to the interrupted read; the 413 below replaces it
            started = True
            await send(message)

        with contextlib.suppress(_BodyTooLargeError):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded and not started:
            await self._too_large()(scope, receive, send)


class RequestMetrics:
    """Observes ``reid_request_latency_seconds{route, status}``; ``route`` is the matched path template
    (``/gallery/{item_id}``), or ``unmatched``, so labels stay bounded whatever clients request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app raises before answering
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_latency.labels(route=route, status=str(status)).observe(
                time.perf_counter() - started
            )
