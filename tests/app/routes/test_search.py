from __future__ import annotations

import numpy as np
import pytest

from reid.embeddings import aggregate
from reid.engine import Extractor
from reid.gallery import BACKENDS
from tests.app.helpers import b64, files, image_bytes
from tests.gallery.helpers import is_best_first

# Six crops: (seed, camera, person, timestamp).
CROPS = [(seed, 1 + seed % 3, 10 + seed // 2, 1000.0 + seed) for seed in range(6)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here that takes ``client`` runs on FAISS and on Milvus (milvus-lite)."""
    return str(request.param)


@pytest.fixture
def filled(client):
    items = [
        {
            "image": b64(image_bytes(seed)),
            "key": f"k{seed}",
            "camera_id": cam,
            "person_id": pid,
            "timestamp": ts,
        }
        for seed, cam, pid, ts in CROPS
    ]
    response = client.post("/gallery", json={"items": items})
    assert response.status_code == 200, response.text
    return client, dict(zip((seed for seed, *_ in CROPS), response.json()["ids"], strict=True))


def hit_ids(response) -> list[list[int]]:
    assert response.status_code == 200, response.text
    return [[hit["id"] for hit in result["hits"]] for result in response.json()["results"]]


def brute_force(extractor: Extractor, query_seed: int, keep) -> list[int]:
    """Seeds of the crops ``keep`` allows, by cosine similarity to the query (numpy reference)."""
    allowed = [c for c in CROPS if keep(*c)]
    gallery = extractor.embed([image_bytes(seed) for seed, *_ in allowed])
    query = extractor.embed([image_bytes(query_seed)])[0]
    order = np.argsort(-(gallery @ query), kind="stable")
    return [allowed[i][0] for i in order]


def test_an_inserted_crop_is_found_first(filled, extractor):
    client, ids = filled
    response = client.post("/search", files=files(image_bytes(4)), data={"k": "3"})
    (found,) = hit_ids(response)
    expected = brute_force(extractor, 4, lambda *_: True)[:3]
    assert found == [ids[s] for s in expected]
    assert found[0] == ids[4]
    best = response.json()["results"][0]["hits"][0]
    assert best["key"] == "k4"
    assert best["score"] == pytest.approx(1.0, abs=1e-4)
    assert (best["camera_id"], best["person_id"], best["timestamp"]) == CROPS[4][1:]
    assert "x-inference-time" in response.headers


def test_search_by_embedding_any_scale(filled, extractor):
    client, ids = filled
    vector = extractor.embed([image_bytes(2)])[0] * 7.5
    response = client.post(
        "/search", json={"embeddings": [vector.tolist()], "k": 6, "model": extractor.fingerprint}
    )
    (found,) = hit_ids(response)
    assert found == [ids[s] for s in brute_force(extractor, 2, lambda *_: True)]


@pytest.mark.parametrize(
    ("options", "keep"),
    [
        ({"cameras_in": [1, 2]}, lambda seed, cam, pid, ts: cam in (1, 2)),
        ({"cameras_not_in": [1]}, lambda seed, cam, pid, ts: cam != 1),
        ({"exclude_camera": 3}, lambda seed, cam, pid, ts: cam != 3),
        # the names the API had before it took the library's, still accepted
        ({"cameras": [1, 2]}, lambda seed, cam, pid, ts: cam in (1, 2)),
        ({"exclude_cameras": [1]}, lambda seed, cam, pid, ts: cam != 1),
        ({"query_camera": 3, "exclude_same_camera": True}, lambda seed, cam, pid, ts: cam != 3),
        ({"person_ids": [11]}, lambda seed, cam, pid, ts: pid == 11),
        ({"time_from": 1001.0, "time_to": 1003.0}, lambda seed, cam, pid, ts: 1001 <= ts <= 1003),
    ],
)
def test_filters(filled, extractor, options, keep):
    client, ids = filled
    expected = [ids[s] for s in brute_force(extractor, 5, keep)]
    by_json = client.post("/search", json={"images": [b64(image_bytes(5))], "k": 6, **options})
    assert hit_ids(by_json) == [expected]
    form = {
        name: [str(v) for v in value] if isinstance(value, list) else str(value)
        for name, value in options.items()
    }
    by_form = client.post("/search", files=files(image_bytes(5)), data={"k": "6", **form})
    assert hit_ids(by_form) == [expected]


def test_rerank_keeps_the_duplicate_first_and_rescores(filled):
    client, ids = filled
    query = {"images": [b64(image_bytes(3)), b64(image_bytes(0))], "k": 4}
    plain = client.post("/search", json=query).json()["results"]
    reranked = client.post("/search", json={**query, "rerank": True}).json()["results"]
    for result, seed in zip(reranked, (3, 0), strict=True):
        assert len(result["hits"]) == 4
        assert result["hits"][0]["id"] == ids[seed]
        scores = [hit["score"] for hit in result["hits"]]
        assert is_best_first(scores)
    assert [h["score"] for h in reranked[0]["hits"]] != [h["score"] for h in plain[0]["hits"]]


def test_each_query_is_reranked_on_its_own(filled):
    client, _ = filled
    alone = client.post("/search", json={"images": [b64(image_bytes(3))], "k": 4, "rerank": True})
    together = client.post(
        "/search", json={"images": [b64(image_bytes(3)), b64(image_bytes(1))], "k": 4, "rerank": True}
    )
    # Equal up to float noise: the query embeddings come from batches of different sizes.
    first, second = alone.json()["results"][0]["hits"], together.json()["results"][0]["hits"]
    assert [h["id"] for h in first] == [h["id"] for h in second]
    assert [h["score"] for h in first] == pytest.approx([h["score"] for h in second], abs=1e-4)


def test_empty_gallery_returns_no_hits(client):
    assert hit_ids(client.post("/search", files=files(image_bytes(0)))) == [[]]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"embeddings": [[1.0, 0.0]]}, "model_mismatch"),
        ({"embeddings": [[0.0] * 512]}, "invalid_request"),
        ({"embeddings": [[1.0] * 512], "model": "another-model"}, "model_mismatch"),
        ({"images": [b64(image_bytes(0))], "embeddings": [[1.0] * 512]}, "invalid_request"),
        ({"k": 3}, "invalid_request"),
        ({"images": [b64(image_bytes(0))], "k": 0}, "invalid_request"),
        ({"images": [b64(image_bytes(0))], "exclude_same_camera": True}, "invalid_request"),
        ({"images": [b64(image_bytes(0))], "time_from": 5.0, "time_to": 1.0}, "invalid_request"),
        ({"images": [b64(image_bytes(0))], "cameras": [2**63]}, "invalid_request"),
        ({"images": [b64(image_bytes(0))], "cameras": [1], "cameras_in": [2]}, "invalid_request"),
        (
            {"images": [b64(image_bytes(0))], "exclude_camera": 1, "exclude_same_camera": True},
            "invalid_request",
        ),
    ],
)
def test_invalid_searches_are_422(shared_client, body, code):
    response = shared_client.post("/search", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == code


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_embeddings_are_422(shared_client, literal):
    body = '{"embeddings": [[' + ", ".join(["1.0"] * 511 + [literal]) + "]]}"
    response = shared_client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("body.embeddings[0][511]")


def test_a_bad_query_image_names_the_item(shared_client):
    response = shared_client.post("/search", files=files(image_bytes(0), b"garbage"))
    assert response.status_code == 422
    assert response.json()["detail"].startswith("image 1")


def test_a_track_query_searches_with_its_aggregated_embedding(filled, extractor):
    client, ids = filled
    crops = [image_bytes(seed) for seed in (0, 1, 4)]
    body = {"images": [b64(c) for c in crops], "tracks": ["x", "x", "y"], "k": 6}
    response = client.post("/search", json=body)
    results = response.json()["results"]
    assert [(r["index"], r["track"]) for r in results] == [(0, "x"), (1, "y")]
    track_x = aggregate(extractor.embed(crops[:2]))
    by_vector = client.post("/search", json={"embeddings": [track_x.tolist()], "k": 6})
    assert hit_ids(response)[0] == hit_ids(by_vector)[0]
    assert hit_ids(response)[1][0] == ids[4]


def test_group_by_person_and_min_score(filled):
    client, _ = filled
    query = {"images": [b64(image_bytes(2))], "k": 3}
    grouped = client.post("/search", json={**query, "group_by": "person_id"}).json()["results"][0]["hits"]
    assert len({hit["person_id"] for hit in grouped}) == len(grouped) == 3  # 3 people, 2 crops each
    scores = [
        hit["score"] for hit in client.post("/search", json={**query, "k": 6}).json()["results"][0]["hits"]
    ]
    cut = (scores[2] + scores[3]) / 2
    kept = client.post("/search", json={**query, "k": 6, "min_score": cut}).json()["results"][0]["hits"]
    assert len(kept) == 3


def test_hits_are_flagged_against_the_weights_threshold(make_client, extractor, monkeypatch, tmp_path):
    monkeypatch.setattr(extractor, "match_thresholds", {0.01: 0.9999})
    client = make_client(match_fmr=0.01)
    ids = client.post("/gallery", files=files(image_bytes(0), image_bytes(1))).json()["ids"]
    hits = client.post("/search", files=files(image_bytes(0)), data={"k": "2"}).json()["results"][0]["hits"]
    assert [(hit["id"], hit["match"]) for hit in hits] == [(ids[0], True), (ids[1], False)]
    reranked = client.post("/search", json={"images": [b64(image_bytes(0))], "rerank": True}).json()
    assert {hit["match"] for hit in reranked["results"][0]["hits"]} == {None}
    assert client.get("/info").json()["match_threshold"] == {"fmr": 0.01, "score": 0.9999}
    other = make_client(match_fmr=0.001, gallery_dir=tmp_path / "other")  # a rate the weights lack
    other.post("/gallery", files=files(image_bytes(0)))
    unflagged = other.post("/search", files=files(image_bytes(0))).json()
    assert {hit["match"] for hit in unflagged["results"][0]["hits"]} == {None}
