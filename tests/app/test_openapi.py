from __future__ import annotations

from typing import Any

import pytest

from app.main import create_app
from tests.app.helpers import settings_for


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict[str, Any]:
    return create_app(settings_for(tmp_path_factory.mktemp("openapi"))).openapi()


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_every_reference_resolves(schema):
    names = set(schema["components"]["schemas"])
    missing = {ref for ref in refs(schema) if ref.rsplit("/", 1)[1] not in names}
    assert not missing


@pytest.mark.parametrize("path", ["/embed", "/search", "/gallery"])
def test_image_endpoints_take_json_or_multipart_with_examples(schema, path):
    content = schema["paths"][path]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert resolve(schema, content["application/json"]["schema"])["examples"]
    form = resolve(schema, content["multipart/form-data"]["schema"])
    assert form["properties"]["images"]["items"] == {"type": "string", "format": "binary"}
    assert "images" in form["required"]


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/embed", "post"),
        ("/search", "post"),
        ("/gallery", "post"),
        ("/gallery/{item_id}", "get"),
        ("/gallery/{item_id}", "delete"),
        ("/gallery/stats", "get"),
        ("/info", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ],
)
def test_responses_have_examples(schema, path, method):
    responses = schema["paths"][path][method]["responses"]
    ok = responses["200"]["content"]["application/json"]
    assert ok.get("example") or resolve(schema, ok["schema"])["examples"]
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            error = resolve(schema, response["content"]["application/json"]["schema"])
            assert set(error["properties"]) == {"error", "detail"}, status


def test_data_routes_declare_the_api_key_and_probes_do_not(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            assert bool(operation.get("security")) == (path not in ("/healthz", "/readyz")), (method, path)
