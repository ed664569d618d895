"""Milvus-only behaviour: filter expressions, index kinds and fields, limits, migration of old collections.
The shared behaviour is in tests/gallery/test_contract.py."""

from typing import Any

import pytest

from reid.errors import ConfigError, GalleryError, GalleryUnavailable
from reid.gallery import MILVUS_MAX_TOPK, Filters, GalleryItem, RerankConfig, open_gallery
from reid.gallery.items import FIELD_NAMES
from tests.gallery.helpers import make_items, unit_vectors

pytest.importorskip("milvus_lite")
pymilvus = pytest.importorskip("pymilvus")
milvus = pytest.importorskip("reid.gallery.backends.milvus")

DIM = 8


def _open(location, **kwargs):
    return open_gallery(location, backend="milvus", **kwargs)


def _write_v1_collection(uri, vectors, *, with_source=True):
    """A gallery collection as the code before the item schema created it (``with_source=False``: as a
    collection created before that field was declared)."""
    DataType = pymilvus.DataType
    client = pymilvus.MilvusClient(uri)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("key", DataType.VARCHAR, max_length=2048, nullable=True)
    schema.add_field("person_id", DataType.INT64, nullable=True)
    schema.add_field("camera_id", DataType.INT64, nullable=True)
    if with_source:
        schema.add_field("source", DataType.VARCHAR, max_length=4096, nullable=True)
    schema.add_field("timestamp", DataType.DOUBLE, nullable=True)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    index_params = client.prepare_index_params()
    index_params.add_index("vector", index_type="FLAT", metric_type="IP", params={})
    index_params.add_index("key", index_type="INVERTED")
    properties = {"reid.dim": str(DIM), "reid.next_id": str(len(vectors) + 1), "reid.fingerprint": "m"}
    client.create_collection("reid_gallery", schema=schema, index_params=index_params, properties=properties)
    rows = [
        {"id": i + 1, "key": f"k{i}", "person_id": i, "camera_id": i % 2, "timestamp": 10.0 * i}
        | {"metadata": {"i": i}, "vector": v.tolist()}
        | ({"source": f"/crops/{i}.jpg"} if with_source else {})
        for i, v in enumerate(vectors)
    ]
    client.insert("reid_gallery", rows)
    client.close()


@pytest.mark.parametrize("with_source", [True, False])
def test_a_collection_written_before_the_item_schema_opens_and_migrates(tmp_path, with_source):
    uri = str(tmp_path / "old.db")
    vectors = unit_vectors(4, DIM)
    _write_v1_collection(uri, vectors, with_source=with_source)
    with open_gallery(uri, backend="milvus", dim=DIM, fingerprint="m") as gallery:
        (hit,) = gallery.search(vectors[2:3], k=1)[0]
        source = "/crops/2.jpg" if with_source else None
        assert (hit.id, hit.key, hit.camera_id, hit.source, dict(hit.metadata)) == (
            3,
            "k2",
            0,
            source,
            {"i": 2},
        )
        (new_id,) = gallery.upsert([GalleryItem(vector=vectors[0], key="k0", person_id=7)])
        assert new_id == 5
        assert gallery.get([new_id])[0].person_id == 7
        assert gallery.count() == 4
        if with_source:
            gallery.add([GalleryItem(vector=vectors[1], key="new", source="/new.jpg")])
            assert gallery.get(gallery.lookup(["new"]))[0].source == "/new.jpg"
        else:  # milvus-lite cannot add a field: the old items work, a value for it is refused
            with pytest.raises(GalleryError, match="predates the item field 'source'"):
                gallery.add([GalleryItem(vector=vectors[1], key="new", source="/new.jpg")])
            assert gallery.count() == 4
        # Nor can it add insertion times: writes go on without them, retention by them is refused.
        assert gallery.get([new_id])[0].inserted_at is None
        with pytest.raises(GalleryError, match="predates insertion times"):
            gallery.erase(Filters(inserted_to=1e12), dry_run=True)
        assert gallery.erase(Filters(person_ids={1}), dry_run=True).matched == 1


def test_schema_follows_the_item_fields(tmp_path):
    with open_gallery(str(tmp_path / "m.db"), backend="milvus", dim=DIM) as gallery:
        storage: Any = gallery.storage
        described = storage._conn.describe_collection(storage.collection)
    assert [f["name"] for f in described["fields"]] == ["id", *FIELD_NAMES, "vector"]


def test_filter_expressions():
    filter_expression = milvus.filter_expression
    assert filter_expression(None) == ""
    assert (
        filter_expression(Filters(cameras_not_in=[3, 1], exclude_camera=2))
        == "(not (camera_id in [1, 2, 3]))"
    )
    assert filter_expression(Filters(person_ids={5}, time_from=1.5, time_to=2.0)) == (
        "(person_id in [5]) and (timestamp >= 1.5) and (timestamp <= 2.0)"
    )
    assert filter_expression(Filters(key_prefix='a"b', inserted_to=3.0, metadata={"zone": "x", "n": 2})) == (
        '(inserted_at <= 3.0) and (key >= "a\\"b") and (key < "a\\"c") and (metadata["n"] == 2) and '
        '(metadata["zone"] == "x")'
    )


def test_a_kept_insertion_time_policy_sets_the_collection_ttl(tmp_path):
    from reid.gallery import RetentionPolicy

    with _open(str(tmp_path / "m.db"), dim=DIM) as gallery:
        storage: Any = gallery.storage

        def ttl():
            return storage._conn.describe_collection(storage.collection)["properties"].get(
                milvus.TTL_PROPERTY
            )

        gallery.set_retention(RetentionPolicy(days=2))
        assert ttl() == str(2 * 86_400)
        gallery.set_retention(RetentionPolicy(days=2, by="captured"))  # a TTL cannot count capture time
        assert ttl() is None
        gallery.set_retention(RetentionPolicy(days=1))
        gallery.set_retention(None)
        assert ttl() is None
    with _open(str(tmp_path / "m.db")) as gallery:
        assert gallery.retention is None


def test_index_kinds(tmp_path):
    location = str(tmp_path / "m.db")
    vectors = unit_vectors(40, DIM)
    with pytest.raises(ConfigError, match="IVF_PQ"):
        _open(location, dim=DIM, index="IVF_PQ")
    with _open(location, dim=DIM, index="HNSW") as gallery:
        gallery.add(make_items(vectors))
        assert gallery.stats().index == "HNSW"
        assert [h.key for h in gallery.search(vectors[:2], k=1)[0]] == ["k0"]
    with pytest.raises(GalleryError, match="HNSW"):
        _open(location, index="FLAT")


def test_refuses_more_hits_than_it_can_return(tmp_path):
    limit = MILVUS_MAX_TOPK
    with _open(str(tmp_path / "m.db"), dim=DIM) as store:
        query = unit_vectors(1, DIM)
        with pytest.raises(ConfigError, match=f"at most {limit}"):
            store.search(query, k=limit + 1)
        with pytest.raises(ConfigError, match=f"at most {limit}"):
            store.search(query, k=10, rerank=RerankConfig(top_n=limit + 1))


def test_refuses_keys_longer_than_its_field_before_reserving_ids(tmp_path):
    with _open(str(tmp_path / "m.db"), dim=DIM) as store:
        vector = unit_vectors(1, DIM)[0]
        with pytest.raises(GalleryError, match="longer than"):
            store.add([GalleryItem(vector=vector, key="k" * 3000)])
        assert store.add([GalleryItem(vector=vector, key="short")]) == [1]


def test_an_unreachable_server_is_unavailable_not_a_crash():
    with pytest.raises(GalleryUnavailable, match="Milvus"):
        open_gallery("http://127.0.0.1:9", backend="milvus", dim=DIM)


def test_indexes_the_fields_that_lookups_use(tmp_path):
    with _open(str(tmp_path / "m.db"), dim=DIM) as store:
        milvus_storage: Any = store.storage
        indexes = {
            name: milvus_storage._conn.describe_index(milvus_storage.collection, name)["index_type"]
            for name in milvus_storage._conn.list_indexes(milvus_storage.collection)
        }
    assert indexes == {"vector": "FLAT", **dict.fromkeys(milvus.SCALAR_INDEXED, "INVERTED")}


def test_details_name_the_collection_and_the_local_disk_use(tmp_path):
    with _open(str(tmp_path / "m.db"), dim=DIM) as gallery:
        gallery.add(make_items(unit_vectors(3, DIM)))
        gallery.save()
        details = gallery.stats().details
    assert (details["collection"], details["last_id"]) == ("reid_gallery", 3)
    assert details["disk_bytes"] > 0
