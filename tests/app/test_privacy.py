"""Retention and the audit log in the running service (erasure itself: tests/app/routes/test_gallery.py)."""

import json

from reid.gallery import GalleryItem, StoreOptions, open_gallery
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
