from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.types import Message

from app.errors import http_status_code, status_of
from app.main import create_app
from reid import errors
from tests.app.helpers import async_client, settings_for


def test_client_hanging_up_mid_body_is_not_a_server_error(tmp_path, extractor):
    app = create_app(settings_for(tmp_path), extractor=extractor)
    body = b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\n\r\n\xff\xd8'
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/embed",
        "raw_path": b"/embed",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b"), (b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages: Iterator[Message] = iter(
        [{"type": "http.request", "body": body, "more_body": True}, {"type": "http.disconnect"}]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    async def scenario() -> None:
        async with async_client(app):
            await app(scope, receive, send)

    asyncio.run(scenario())
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 499


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.UnsupportedImage("x"), 415),
        (errors.ImageTooLarge("x"), 413),
        (errors.InvalidImage("x"), 422),
        (errors.UnknownModel("x"), 422),  # mapped through its parent, ConfigError
        (errors.UnsafeCheckpoint("x"), 500),
        (errors.QueueFull(), 429),
        (errors.GalleryUnavailable("x"), 503),  # mapped through NotReady: retry later
    ],
)
def test_subclasses_map_through_the_closest_ancestor(error, status):
    assert status_of(error) == status


def test_http_codes_come_from_the_reason_phrase():
    assert http_status_code(404) == "not_found"
    assert http_status_code(415) == "unsupported_media_type"
    assert http_status_code(499) == "http_error"
