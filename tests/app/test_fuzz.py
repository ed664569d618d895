"""Property test over the OpenAPI document: whatever a client sends, the service never answers 5xx.

Requests are generated from the app's own schema (every operation, its path and query parameters, its
JSON and multipart bodies), with values that follow the declared types most of the time and are
arbitrary JSON, out-of-range numbers, corrupt or foreign image bytes otherwise.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from tests.app.helpers import image_bytes, settings_for, wait_ready

MAX_EXAMPLES = 120

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
EDGE_INTEGERS = st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30])
VALID_IMAGES = st.sampled_from([image_bytes(0), image_bytes(1, fmt="PNG"), image_bytes(2, fmt="GIF")])
BROKEN_IMAGES = st.sampled_from([image_bytes(3, fmt="TIFF"), image_bytes(4)[:60], b"", b"GIF89a"])
# Mostly decodable images, so requests get past decoding into search and gallery writes.
IMAGE_BYTES = st.one_of(VALID_IMAGES, VALID_IMAGES, VALID_IMAGES, BROKEN_IMAGES, st.binary(max_size=48))
BASE64_TEXT = st.one_of(
    *[IMAGE_BYTES.map(lambda data: base64.b64encode(data).decode())] * 3, st.text(max_size=12)
)


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = doc["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def typed(doc: dict[str, Any], node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the schema's type, mostly within its bounds, plus edge integers that may not be."""
    node = resolve(doc, node)
    if "anyOf" in node:
        return st.one_of([typed(doc, option) for option in node["anyOf"]])
    if "enum" in node or "const" in node:
        return st.sampled_from(node.get("enum", [node.get("const")]))
    kind = node.get("type")
    if kind == "integer":
        return st.integers(node.get("minimum"), node.get("maximum")) | EDGE_INTEGERS
    if kind == "number":
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        if node.get("format") == "binary":
            return IMAGE_BYTES
        if node.get("contentEncoding") == "base64":
            return BASE64_TEXT
        if "contentSchema" in node:  # JSON carried in a string (multipart 'items')
            return (typed(doc, node["contentSchema"]) | JSON_VALUE).map(json.dumps) | st.text(max_size=8)
        return st.text(min_size=node.get("minLength", 0), max_size=12)
    if kind == "array":
        least = node.get("minItems", 0)
        return st.lists(typed(doc, node.get("items", {})), min_size=least, max_size=least + 2)
    if kind == "object" or "properties" in node:
        properties = node.get("properties", {})
        if not properties:
            return st.dictionaries(st.text(max_size=5), JSON_VALUE, max_size=3)
        required = {name: typed(doc, properties[name]) for name in node.get("required", [])}
        optional = {name: typed(doc, p) for name, p in properties.items() if name not in required}
        return st.fixed_dictionaries(required, optional=optional)
    return JSON_VALUE


def field(doc: dict[str, Any], node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Well-typed (values may still be out of range), or anything at all."""
    return typed(doc, node) | JSON_VALUE


def form_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def requests(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    operations = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    path, method, op = draw(st.sampled_from(operations))
    url, query = path, {}
    for param in op.get("parameters", []):
        value = draw(field(doc, param["schema"]) | EDGE_INTEGERS | st.text(max_size=6))
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", quote(form_value(value), safe=""))
        elif param["in"] == "query" and draw(st.booleans()):
            query[param["name"]] = form_value(value)
    request: dict[str, Any] = {"method": method.upper(), "url": url, "params": query}
    content = op.get("requestBody", {}).get("content", {})
    if not content:
        return request
    media_type = draw(st.sampled_from(sorted(content)))
    body = draw(field(doc, content[media_type]["schema"]))
    if media_type == "application/json":
        request["content"] = json.dumps(body).encode()
        request["headers"] = {
            "content-type": draw(st.sampled_from(["application/json"] * 3 + ["text/plain"]))
        }
    elif isinstance(body, dict):
        images = body.pop("images", [])
        images = images if isinstance(images, list) else [images]
        request["files"] = [
            (
                "images",
                (f"{i}.jpg", item if isinstance(item, bytes) else form_value(item).encode(), "image/jpeg"),
            )
            for i, item in enumerate(images)
        ]
        request["data"] = {
            name: [form_value(v) for v in value] if isinstance(value, list) else form_value(value)
            for name, value in body.items()
            if value is not None  # a form has no null: leave the field out
        }
        if not request["files"] and not request["data"]:
            request["content"], request["headers"] = b"", {"content-type": "multipart/form-data; boundary=x"}
    else:
        request["content"] = form_value(body).encode()
        request["headers"] = {"content-type": "multipart/form-data; boundary=xyz"}
    return request


FUZZ_KEY = "fuzz-key"


@pytest.fixture(scope="module", params=[False, True], ids=["open", "keys-on"])
def fuzz_client(request, tmp_path_factory, extractor):
    """The service without keys, and with a key that every fuzzed request carries (so the fuzz reaches
    the handlers behind the key check)."""
    keys = {"api_key": FUZZ_KEY} if request.param else {}
    settings = settings_for(tmp_path_factory.mktemp("fuzz"), max_images_per_request=4, **keys)
    headers = {"x-api-key": FUZZ_KEY} if request.param else {}
    with TestClient(create_app(settings, extractor=extractor), headers=headers) as client:
        wait_ready(client)
        yield client


def test_no_request_gets_a_server_error(fuzz_client: TestClient):
    doc = fuzz_client.app.openapi()  # type: ignore[attr-defined]

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests(doc))
    def check(request: dict[str, Any]) -> None:
        response = fuzz_client.request(**request)
        assert response.status_code < 500, (request, response.text)
        if response.status_code >= 400:
            assert set(response.json()) == {"error", "detail"}

    check()
