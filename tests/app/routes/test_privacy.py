"""Privacy endpoints (erasure, retention), retention in the running service, and the audit log."""

import json

import pytest

from reid.gallery import BACKENDS, GalleryItem, StoreOptions, open_gallery
from tests.app.helpers import b64, image_bytes

KEYS = [
    {"name": "dpo", "key": "dpo-secret-1234", "scopes": ["admin", "search"]},
    {"name": "indexer", "key": "indexer-secret-5678", "scopes": ["embed", "write", "search"]},
]


def test_the_audit_log_names_keys_and_endpoints_never_the_keys(make_client, tmp_path, extractor):
    client = make_client(api_keys=KEYS, audit_searches=True)
    indexer, dpo = {"x-api-key": "indexer-secret-5678"}, {"Authorization": "Bearer dpo-secret-1234"}
    items = [{"image": b64(image_bytes(i)), "key": f"k{i}", "person_id": i} for i in range(3)]
    assert client.post("/gallery", json={"items": items}, headers=indexer).status_code == 200
    query = {"embeddings": [[1.0] * extractor.dim], "k": 2, "person_ids": [0, 1]}
    assert client.post("/search", json=query, headers=dpo).status_code == 200
    assert client.get("/gallery/2", params={"include_vector": "true"}, headers=dpo).status_code == 200
    assert client.delete("/gallery/1", headers=indexer).status_code == 200
    assert client.post("/gallery/erase", json={"person_ids": [2]}, headers=dpo).json()["erased"] == 1
    text = (tmp_path / "gallery" / "audit.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(line["action"], line["via"], line["key"]) for line in lines] == [
        ("upsert", "POST /gallery", "indexer"),  # keyed items are upserted
        ("search", "POST /search", "dpo"),
        ("read", "GET /gallery/{item_id}", "dpo"),
        ("delete", "DELETE /gallery/{item_id}", "indexer"),
        ("erase", "POST /gallery/erase", "dpo"),
    ]
    assert lines[1]["filter"] == {"person_ids": [0, 1]}
    assert lines[2]["ids"] == [2]
    assert lines[4]["filter"] == {"person_ids": [2]}
    assert "secret" not in text


def test_the_service_applies_retention_at_start_and_periodically(make_client, tmp_path, extractor):
    gallery_dir = tmp_path / "gallery"
    vectors = extractor.embed([image_bytes(0), image_bytes(1)])
    old = StoreOptions(clock=lambda: 1_000_000.0)  # stored long ago
    with open_gallery(gallery_dir, dim=extractor.dim, fingerprint=extractor.fingerprint, store=old) as g:
        g.add([GalleryItem(vector=vectors[0], key="old")])
    client = make_client(retention_days=30, retention_interval_s=0.05)
    assert client.get("/gallery/stats").json()["retention"] == [{"days": 30, "by": "inserted"}]
    assert client.get("/gallery/stats").json()["count"] == 0  # erased as the service started
    items = [{"image": b64(image_bytes(1)), "key": "new"}]
    assert client.post("/gallery", json={"items": items}).status_code == 200
    assert client.get("/gallery/stats").json()["count"] == 1  # recent: kept by every later sweep
    lines = [json.loads(line) for line in (gallery_dir / "audit.jsonl").read_text().splitlines()]
    sweeps = [line for line in lines if line["action"] == "retention"]
    assert sweeps[0]["erased"] == 1
    assert sweeps[0]["via"] == "gallery open"
    assert sweeps[0]["policies"][0]["days"] == 30
    assert all(line["erased"] == 0 for line in sweeps[1:])


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The endpoint tests here that take ``client`` run on FAISS and on Milvus (milvus-lite)."""
    return str(request.param)


def add(client, *items):
    return client.post("/gallery", json={"items": list(items)})


def test_erase_by_filter_after_a_dry_run(client):
    items = [{"image": b64(image_bytes(i)), "key": f"site-a/{i}", "person_id": i % 2} for i in range(4)]
    add(client, *items, {"image": b64(image_bytes(9)), "key": "site-b/0", "person_id": 1})
    erasing = {"person_ids": [1], "key_prefix": "site-a/"}
    dry = client.post("/gallery/erase", json={**erasing, "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"matched": 2, "erased": 0, "dry_run": True}
    assert client.get("/gallery/stats").json()["count"] == 5
    assert client.post("/gallery/erase", json=erasing).json() == {"matched": 2, "erased": 2, "dry_run": False}
    assert client.get("/gallery/stats").json()["count"] == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "needs a filter"),
        ({"dry_run": True}, "needs a filter"),
        ({"metadata": {"bad key": 1}}, "metadata filter keys"),
        ({"time_from": 5, "time_to": 1}, "after time_to"),
        ({"persons": [1]}, "persons"),
    ],
)
def test_erase_refuses_bad_filters_with_a_message(client, body, message):
    response = client.post("/gallery/erase", json=body)
    assert response.status_code == 422
    assert message in response.text


def test_retention_is_shown_kept_and_removed_over_http(client):
    assert (
        client.post("/gallery", json={"items": [{"image": b64(image_bytes(1)), "key": "a"}]}).status_code
        == 200
    )
    shown = client.get("/gallery/retention")
    assert shown.json() == {"kept": None, "service": None, "due": 0, "erased": None}
    kept = client.put("/gallery/retention", json={"days": 30})
    assert kept.status_code == 200, kept.text
    assert kept.json() == {"kept": {"days": 30.0, "by": "inserted"}, "service": None, "due": 0, "erased": 0}
    assert client.get("/gallery/stats").json()["retention"] == [{"days": 30.0, "by": "inserted"}]
    assert client.put("/gallery/retention", json={"days": None}).json()["kept"] is None
    assert client.put("/gallery/retention", json={"days": 0}).status_code == 422
    assert client.put("/gallery/retention", json={"days": 1e308}).status_code == 422
    assert client.put("/gallery/retention", json={"days": 3, "by": "whenever"}).status_code == 422


def test_keeping_a_policy_over_http_erases_what_it_expired_at_once(make_client, tmp_path, extractor):
    old = StoreOptions(clock=lambda: 1_000_000.0)  # stored long ago
    with open_gallery(
        tmp_path / "gallery", dim=extractor.dim, fingerprint=extractor.fingerprint, store=old
    ) as gallery:
        gallery.add([GalleryItem(vector=extractor.embed([image_bytes(0)])[0], key="old")])
    client = make_client()
    assert client.get("/gallery/retention").json()["due"] == 0  # no policy yet
    kept = client.put("/gallery/retention", json={"days": 30, "by": "captured"}).json()
    assert (kept["erased"], kept["due"]) == (1, 0)  # no capture time: counted from insertion
    assert client.get("/gallery/stats").json()["count"] == 0
