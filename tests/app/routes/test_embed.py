from __future__ import annotations

import base64
import textwrap

import httpx
import numpy as np
import pytest

from reid.embeddings import aggregate
from reid.engine import Extractor
from tests.app.helpers import b64, files, image_bytes

IMAGES = [image_bytes(seed) for seed in range(3)]


@pytest.fixture
def client(shared_client):
    """Nothing here writes to the gallery: one service serves the whole module."""
    return shared_client


def as_array(response: httpx.Response) -> np.ndarray:
    body = response.json()
    assert [item["index"] for item in body["data"]] == list(range(len(body["data"])))
    return np.asarray([item["embedding"] for item in body["data"]], dtype=np.float32)


def test_multipart_embeddings_equal_the_engine(client, extractor: Extractor):
    response = client.post("/embed", files=files(*IMAGES))
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == extractor.fingerprint
    assert body["dim"] == extractor.dim == 512
    np.testing.assert_allclose(as_array(response), extractor.embed(IMAGES), atol=1e-5)
    for header in ("x-decode-time", "x-queue-time", "x-inference-time"):
        assert float(response.headers[header]) >= 0
    assert int(response.headers["x-batch-size"]) >= len(IMAGES)


def test_json_base64_equals_multipart(client):
    by_json = client.post("/embed", json={"images": [b64(i) for i in IMAGES]})
    by_form = client.post("/embed", files=files(*IMAGES))
    assert by_json.status_code == by_form.status_code == 200
    np.testing.assert_allclose(as_array(by_json), as_array(by_form), atol=1e-6)


def test_data_urls_and_wrapped_base64_are_accepted(client, extractor: Extractor):
    wrapped = "\n".join(textwrap.wrap(b64(IMAGES[0]), 76))  # what `base64` prints
    data_url = "data:image/jpeg;base64," + b64(IMAGES[1])
    response = client.post("/embed", json={"images": [wrapped, data_url]})
    assert response.status_code == 200
    np.testing.assert_allclose(as_array(response), extractor.embed(IMAGES[:2]), atol=1e-5)


def test_base64_encoding_is_little_endian_float32(client):
    floats = as_array(client.post("/embed", json={"images": [b64(IMAGES[0])]}))
    response = client.post("/embed", json={"images": [b64(IMAGES[0])], "encoding_format": "base64"})
    assert response.json()["encoding_format"] == "base64"
    decoded = np.frombuffer(base64.b64decode(response.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, floats[0])


def test_normalize_false_keeps_the_raw_scale(client, extractor: Extractor):
    raw = as_array(client.post("/embed", files=files(IMAGES[0]), data={"normalize": "false"}))
    expected = extractor.embed(IMAGES[:1], normalize_output=False)
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-4)
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 1e-2


@pytest.mark.parametrize(
    ("images", "status", "code", "names"),
    [
        ([IMAGES[0], b"\xff\xd8\xff\xe0 not really a jpeg"], 422, "invalid_image", "image 1"),
        ([IMAGES[0], IMAGES[1], b""], 422, "invalid_image", "image 2"),
        ([image_bytes(0, fmt="TIFF")], 415, "unsupported_image", "image 0"),
    ],
)
def test_bad_images_name_the_item(client, images, status, code, names):
    for response in (
        client.post("/embed", files=files(*images)),
        client.post("/embed", json={"images": [b64(i) for i in images]}),
    ):
        assert response.status_code == status, response.text
        assert response.json()["error"] == code
        assert response.json()["detail"].startswith(names)


def test_invalid_base64_names_the_item(client):
    response = client.post("/embed", json={"images": [b64(IMAGES[0]), "not base64!"]})
    assert response.status_code == 422
    assert response.json() == {"error": "invalid_image", "detail": response.json()["detail"]}
    assert response.json()["detail"].startswith("image 1: invalid base64")


def test_a_path_is_never_read(client, tmp_path, monkeypatch):
    # "abcd" is valid base64 and names a real image file here: it must be decoded, never opened.
    (tmp_path / "abcd").write_bytes(IMAGES[0])
    monkeypatch.chdir(tmp_path)
    response = client.post("/embed", json={"images": ["abcd"]})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_image"


def test_too_many_pixels(make_client):
    client = make_client(max_pixels=40 * 80 - 1)
    response = client.post("/embed", files=files(IMAGES[0]))
    assert response.status_code == 413
    assert response.json()["error"] == "image_too_large"
    assert response.json()["detail"].startswith("image 0")


def test_too_many_images(make_client):
    client = make_client(max_images_per_request=2)
    for response in (
        client.post("/embed", files=files(*IMAGES)),
        client.post("/embed", json={"images": [b64(i) for i in IMAGES]}),
    ):
        assert response.status_code == 413
        assert response.json()["error"] == "too_many_images"


def test_payload_over_the_limit(make_client):
    client = make_client(max_request_bytes=2000)
    big = image_bytes(0, size=(400, 800), fmt="PNG")
    assert len(big) > 2000
    declared = client.post("/embed", files=files(big))
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"
    # A chunked upload states no length: the limit applies to the bytes as they arrive.
    chunks = (big[i : i + 500] for i in range(0, len(big), 500))
    streamed = client.post("/embed", content=chunks, headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert streamed.json()["error"] == "payload_too_large"
    assert client.post("/embed", files=files(IMAGES[0])).status_code == 200  # small ones still pass


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid_request"),
        ({"json": {"images": []}}, 422, "invalid_request"),
        ({"json": {"images": [b64(IMAGES[0])], "encoding_format": "hex"}}, 422, "invalid_request"),
        ({"json": {"images": [b64(IMAGES[0])], "colour": True}}, 422, "invalid_request"),
        (
            {"data": {"normalize": "true"}, "files": [("other", ("a.jpg", IMAGES[0], "image/jpeg"))]},
            422,
            "invalid_request",
        ),
        ({"files": files(IMAGES[0]), "data": {"images": "text"}}, 422, "invalid_request"),
        ({"files": files(IMAGES[0]), "data": {"normalize": ["true", "false"]}}, 422, "invalid_request"),
    ],
)
def test_malformed_requests(client, kwargs, status, code):
    response = client.post("/embed", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.json()["detail"]


def test_tracks_get_one_aggregated_embedding_each(client):
    body = {"images": [b64(image) for image in IMAGES], "tracks": ["a", 7, "a"], "quality": [1.0, 1.0, 3.0]}
    response = client.post("/embed", json=body)
    assert response.status_code == 200, response.text
    crops = as_array(response)
    tracks = response.json()["tracks"]
    assert [(t["track"], t["size"]) for t in tracks] == [("a", 2), ("7", 1)]
    np.testing.assert_allclose(tracks[0]["embedding"], aggregate(crops[[0, 2]], [1.0, 3.0]), atol=1e-6)
    np.testing.assert_allclose(tracks[1]["embedding"], crops[1], atol=1e-6)
    assert client.post("/embed", json={"images": body["images"]}).json()["tracks"] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tracks": ["a", "b"]}, "2 track labels for 3 crops"),
        ({"quality": [1.0, 1.0, 1.0]}, "give tracks too"),
        ({"tracks": ["a", "a", "b"], "quality": [1.0, -1.0, 1.0]}, "greater than or equal to 0"),
    ],
)
def test_bad_track_requests_are_422(client, extra, message):
    response = client.post("/embed", json={"images": [b64(image) for image in IMAGES], **extra})
    assert response.status_code == 422
    assert message in response.text
