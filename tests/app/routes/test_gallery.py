from __future__ import annotations

import json
import time

import numpy as np
import pytest

from reid.engine import Extractor
from reid.gallery import BACKENDS
from tests.app.helpers import b64, files, image_bytes
from tests.gallery.helpers import item_fields

KEY = "sekret-key"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here that takes ``client`` runs on FAISS and on Milvus (milvus-lite)."""
    return str(request.param)


def add(client, *items, headers=None):
    return client.post("/gallery", json={"items": list(items)}, headers=headers or {})


def test_add_get_delete_round_trip(client, extractor: Extractor):
    item = {
        "image": b64(image_bytes(7)),
        "key": "a",
        "person_id": 3,
        "camera_id": 2,
        "metadata": {"zone": "x"},
    }
    before = time.time()
    response = add(client, item, {"image": b64(image_bytes(8))})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == extractor.fingerprint
    first, second = response.json()["ids"]
    stored = client.get(f"/gallery/{first}", params={"include_vector": "true"}).json()
    assert before <= stored["inserted_at"] <= time.time()  # the gallery stamps when it stored the item
    assert stored | {"vector": None} == {
        "id": first,
        **item_fields(key="a", person_id=3, camera_id=2, metadata={"zone": "x"}),
        "inserted_at": stored["inserted_at"],
        "vector": None,
    }
    np.testing.assert_allclose(stored["vector"], extractor.embed([image_bytes(7)])[0], atol=1e-5)
    assert client.get(f"/gallery/{second}").json()["vector"] is None
    assert client.get("/gallery/stats").json()["count"] == 2

    deleted = client.delete(f"/gallery/{first}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": first, "deleted": True}
    assert client.get(f"/gallery/{first}").status_code == 404
    assert client.get(f"/gallery/{first}").json()["error"] == "not_found"
    assert client.delete(f"/gallery/{first}").status_code == 404
    assert client.get("/gallery/stats").json()["count"] == 1


def test_upsert_by_key_replaces_the_item(client):
    (old,) = add(client, {"image": b64(image_bytes(1)), "key": "same", "camera_id": 1}).json()["ids"]
    (new,) = add(client, {"image": b64(image_bytes(2)), "key": "same", "camera_id": 5}).json()["ids"]
    assert new != old
    assert client.get(f"/gallery/{old}").status_code == 404
    assert client.get(f"/gallery/{new}").json()["camera_id"] == 5
    assert client.get("/gallery/stats").json()["count"] == 1


def test_multipart_add_with_items_and_file_names(client):
    items = [{"key": "m0", "camera_id": 4}, {"source": "explicit.jpg"}]
    response = client.post(
        "/gallery", files=files(image_bytes(1), image_bytes(2)), data={"items": json.dumps(items)}
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["ids"]
    assert client.get(f"/gallery/{first}").json()["source"] == "img0.jpg"
    assert client.get(f"/gallery/{first}").json()["camera_id"] == 4
    assert client.get(f"/gallery/{second}").json()["source"] == "explicit.jpg"
    (plain,) = client.post("/gallery", files=files(image_bytes(3))).json()["ids"]
    assert client.get(f"/gallery/{plain}").json()["source"] == "img0.jpg"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"items": [{"image": "", "key": "d"}, {"image": "", "key": "d"}]}},
        {"json": {"items": [{"image": b64(image_bytes(0)), "metadata": "not an object"}]}},
        {"json": {"items": [{"image": b64(image_bytes(0)), "person_id": 2**63}]}},
        {"json": {"items": []}},
        {
            "content": b'{"items": [{"image": "", "timestamp": NaN}]}',
            "headers": {"content-type": "application/json"},
        },
        {
            "content": b'{"items": [{"image": "", "metadata": {"a": Infinity}}]}',
            "headers": {"content-type": "application/json"},
        },
        {"files": files(image_bytes(0)), "data": {"items": "[{}, {}]"}},
        {"files": files(image_bytes(0)), "data": {"items": "not json"}},
        {"files": files(image_bytes(0), image_bytes(1)), "data": {"items": '[{"key": "x"}, {"key": "x"}]'}},
    ],
)
def test_invalid_items_are_422(shared_client, kwargs):
    response = shared_client.post("/gallery", **kwargs)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert shared_client.get("/gallery/stats").json()["count"] == 0


@pytest.mark.parametrize("item_id", ["0", "-1", "abc", str(2**63), "1.5"])
def test_invalid_ids_are_422(shared_client, item_id):
    assert shared_client.get(f"/gallery/{item_id}").status_code == 422
    assert shared_client.delete(f"/gallery/{item_id}").status_code == 422


def test_the_api_key_guards_reads_and_writes(make_client):
    client = make_client(api_key=KEY)
    item = {"image": b64(image_bytes(0)), "key": "k"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"}, {"Authorization": KEY}):
        refused = add(client, item, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["error"] == "unauthorized"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert add(client, item, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    (item_id,) = add(client, item, headers={"x-api-key": KEY}).json()["ids"]  # the upsert's new id
    key = {"x-api-key": KEY}
    for path in ("/gallery/stats", f"/gallery/{item_id}?include_vector=true"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=key).status_code == 200
    assert client.post("/search", files=files(image_bytes(0))).status_code == 401
    assert client.post("/search", files=files(image_bytes(0)), headers=key).status_code == 200
    assert client.post("/embed", files=files(image_bytes(0)), headers=key).status_code == 200
    assert client.delete(f"/gallery/{item_id}").status_code == 401
    assert client.delete("/gallery/12345", headers=key).status_code == 404


def test_a_service_without_a_gallery_still_embeds(make_client):
    client = make_client(gallery_dir=None)
    assert client.get("/readyz").status_code == 200
    assert client.post("/embed", files=files(image_bytes(0))).status_code == 200
    for response in (
        client.post("/gallery", files=files(image_bytes(0))),
        client.post("/search", files=files(image_bytes(0))),
        client.get("/gallery/stats"),
    ):
        assert response.status_code == 404
        assert "without a gallery" in response.json()["detail"]
    info = client.get("/info").json()
    assert (info["gallery_size"], info["gallery_index"]) == (None, None)
