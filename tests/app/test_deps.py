"""Every route is either open on purpose or guarded by a scope: a new route without protection fails here."""

import pytest
from fastapi.testclient import TestClient

from tests.app.helpers import b64, image_bytes

# Open whatever the keys: probes must work without one.
OPEN = {("GET", "/healthz"), ("GET", "/readyz")}
# Open unless REID_PROTECT_OPS.
OPS = {("GET", "/info"), ("GET", "/metrics")}
SCOPE = {
    ("POST", "/embed"): "embed",
    ("POST", "/search"): "search",
    ("GET", "/gallery/stats"): "search",
    ("GET", "/gallery/{item_id}"): "search",
    ("POST", "/gallery"): "write",
    ("DELETE", "/gallery/{item_id}"): "write",
    ("POST", "/gallery/erase"): "admin",
    ("GET", "/gallery/retention"): "admin",
    ("PUT", "/gallery/retention"): "admin",
}
KEYS = {scope: f"{scope}-secret" for scope in ("embed", "search", "write", "admin")}
API_KEYS = [{"name": f"{scope}-key", "key": key, "scopes": [scope]} for scope, key in KEYS.items()]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, extractor):
    from app.main import create_app
    from tests.app.helpers import settings_for, wait_ready

    settings = settings_for(tmp_path_factory.mktemp("guarded"), api_keys=API_KEYS)
    with TestClient(create_app(settings, extractor=extractor)) as client:
        wait_ready(client)
        yield client


def _routes(client):
    """Every (method, path) the OpenAPI schema publishes."""
    return {(method.upper(), path) for path, item in client.app.openapi()["paths"].items() for method in item}


def _call(client, method, path, headers):
    url = path.replace("{item_id}", "1")
    body = {"json": {"images": [b64(image_bytes(0))]}} if method == "POST" else {}
    return client.request(method, url, headers=headers, **body)


def test_every_route_is_classified(guarded):
    assert _routes(guarded) == OPEN | OPS | set(SCOPE)


@pytest.mark.parametrize(("method", "path"), sorted(SCOPE))
def test_each_data_route_needs_a_key_with_its_scope(guarded, method, path):
    scope = SCOPE[(method, path)]
    for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": "Bearer wrong"}):
        refused = _call(guarded, method, path, headers)
        assert refused.status_code == 401, headers
        assert refused.json()["error"] == "unauthorized"
    other = next(s for s in KEYS if s != scope)
    forbidden = _call(guarded, method, path, {"x-api-key": KEYS[other]})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "forbidden"
    assert f"'{scope}' scope" in forbidden.json()["detail"]
    allowed = _call(guarded, method, path, {"Authorization": f"Bearer {KEYS[scope]}"})
    assert allowed.status_code not in (401, 403), allowed.text


@pytest.mark.parametrize(("method", "path"), sorted(OPEN | OPS))
def test_probes_and_ops_stay_open_by_default(guarded, method, path):
    assert _call(guarded, method, path, {}).status_code == 200


def test_protect_ops_puts_info_and_metrics_behind_any_key(make_client):
    client = make_client(api_keys=API_KEYS, protect_ops=True)
    for method, path in sorted(OPS):
        assert _call(client, method, path, {}).status_code == 401
        assert _call(client, method, path, {"x-api-key": KEYS["embed"]}).status_code == 200
    for method, path in sorted(OPEN):
        assert _call(client, method, path, {}).status_code == 200


def test_without_keys_everything_is_open(shared_client):
    assert shared_client.post("/embed", json={"images": [b64(image_bytes(0))]}).status_code == 200
    assert shared_client.get("/gallery/stats").status_code == 200
