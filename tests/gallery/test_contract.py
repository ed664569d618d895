"""The gallery contract (reid.gallery.core), run against every backend (FAISS + SQLite, and Milvus via
milvus-lite)."""

import json

import numpy as np
import pytest

from reid.errors import ConfigError, GalleryError, ModelMismatch, NotFound
from reid.gallery import (
    FaissSearchParams,
    Filters,
    GalleryItem,
    RerankConfig,
    k_reciprocal_rerank,
)
from reid.gallery.ranking import SCORE_TIE_TOLERANCE
from reid.gallery.registry import BACKENDS
from reid.gallery.rerank import cosine_to_sq_euclidean
from tests.gallery.conftest import DIM, LOCATIONS, START, open_on
from tests.gallery.helpers import (
    FILTER_CASES,
    brute_force,
    is_best_first,
    item_fields,
    make_items,
    passes,
    scoring,
    unit_vectors,
)


def test_every_registered_backend_runs_this_suite():
    assert set(LOCATIONS) == set(BACKENDS)


def test_add_get_and_count(filled):
    store, vectors, ids = filled
    assert store.count() == 40
    assert len(set(ids.tolist())) == 40
    records = store.get([ids[9], ids[6]])
    assert [r.id for r in records] == [ids[9], ids[6]]
    assert (records[0].key, records[0].person_id, records[0].camera_id) == ("k9", 2, 0)
    assert (records[1].camera_id, records[1].timestamp, records[1].source) == (None, 60.0, "/crops/6.jpg")
    assert dict(records[0].metadata) == {"i": 9}
    np.testing.assert_allclose(records[0].vector, vectors[9], atol=1e-6)


def test_lookup_existing_keys_and_not_found(filled):
    store, _, ids = filled
    assert store.lookup(["k3", "k0"]) == [ids[3], ids[0]]
    assert store.existing_keys(["k1", "nope", 'q"uote', "k39"]) == {"k1", "k39"}
    odd_key = 'cam 1/it\'s "odd" \\ ü.jpg'
    (odd_id,) = store.add([GalleryItem(vector=unit_vectors(1, DIM)[0], key=odd_key)])
    assert store.lookup([odd_key]) == [odd_id]
    with pytest.raises(NotFound):
        store.lookup(["k1", "nope"])
    with pytest.raises(NotFound):
        store.get([ids[0], 10**9])


def test_add_refuses_existing_keys(filled):
    store, vectors, _ = filled
    with pytest.raises(GalleryError, match="k2"):
        store.add([GalleryItem(vector=vectors[0], key="k2")])
    assert store.count() == 40


def test_upsert_replaces_by_key_with_a_new_id(filled):
    store, vectors, ids = filled
    new_ids = store.upsert(
        [GalleryItem(vector=vectors[5], key="k1", person_id=99), GalleryItem(vector=vectors[6], key="new")]
    )
    assert store.count() == 41
    assert set(new_ids).isdisjoint(ids.tolist())
    assert store.lookup(["k1", "new"]) == new_ids
    assert store.get([new_ids[0]])[0].person_id == 99
    with pytest.raises(NotFound):
        store.get([ids[1]])
    with pytest.raises(GalleryError):
        store.upsert([GalleryItem(vector=vectors[0])])


def test_delete_is_atomic_and_ids_are_never_reused(filled):
    store, vectors, ids = filled
    with pytest.raises(NotFound):
        store.delete([ids[0], 10**9])
    assert store.count() == 40
    store.delete([ids[0], ids[-1]])
    assert store.count() == 38
    assert store.existing_keys(["k0", "k39", "k1"]) == {"k1"}
    (again,) = store.add([GalleryItem(vector=vectors[0], key="k39")])
    assert again > ids.max()


@pytest.mark.parametrize("n_queries", [1, 5])
def test_search_equals_brute_force(filled, n_queries):
    store, vectors, ids = filled
    queries = unit_vectors(n_queries, DIM, seed=7)
    hits = store.search(queries, k=6)
    for row, (want_ids, want_scores) in zip(hits, brute_force(vectors, ids, queries, 6), strict=True):
        assert [h.id for h in row] == want_ids
        np.testing.assert_allclose([h.score for h in row], want_scores, atol=1e-5)
    top = store.search(vectors[3:4], k=1)[0][0]
    assert (top.key, top.person_id, top.camera_id, top.source, dict(top.metadata)) == (
        "k3",
        0,
        0,
        "/crops/3.jpg",
        {"i": 3},
    )


def test_scores_equal_within_the_tolerance_rank_by_id(store):
    tiny = SCORE_TIE_TOLERANCE / 5
    query, vectors = scoring([0.6, 0.6 + tiny, 0.9, 0.6 - tiny, 0.6 + 10 * SCORE_TIE_TOLERANCE, 0.6], DIM)
    ids = store.add([GalleryItem(vector=v) for v in vectors], fingerprint="model-a")
    want = [ids[2], ids[4], ids[0], ids[1], ids[3], ids[5]]
    assert [hit.id for hit in store.search(query, k=6)[0]] == want


def test_k_larger_than_the_gallery(filled):
    store, vectors, _ = filled
    assert len(store.search(vectors[:1], k=100)[0]) == 40


@pytest.mark.parametrize("filters", FILTER_CASES)
def test_filters_match_brute_force_on_the_allowed_subset(filled, filters):
    store, vectors, ids = filled
    keep = np.array([passes(item, filters) for item in make_items(vectors)])
    queries = unit_vectors(3, DIM, seed=11)
    hits = store.search(queries, k=40, filters=filters)  # the whole allowed subset, in order
    expected = brute_force(vectors[keep], ids[keep], queries, 40) if keep.any() else [([], [])] * 3
    assert [[h.id for h in row] for row in hits] == [want for want, _ in expected]


def test_one_filter_per_query(filled):
    store, vectors, _ = filled
    per_query = [Filters(exclude_camera=0), Filters(cameras_in={1}), Filters(exclude_camera=0)]
    hits = store.search(vectors[:3], k=4, filters=per_query)
    assert all(h.camera_id != 0 for h in hits[0] + hits[2])
    assert all(h.camera_id == 1 for h in hits[1])
    assert hits[1][0].key == "k1"


def _assert_names_both_models(error):
    assert "model-a" in str(error)
    assert "model-b" in str(error)


def test_rerank_reorders_each_querys_top_n_candidates_on_its_own(filled):
    gallery, vectors, ids = filled
    queries = unit_vectors(3, 16, seed=4)
    config = RerankConfig(k1=4, k2=2, lambda_value=0.3, top_n=12)
    hits = gallery.search(queries, k=5, rerank=config)
    for q, row in enumerate(hits):
        (candidates, _), *_ = brute_force(vectors, ids, queries[q : q + 1], 12)
        g = vectors[np.searchsorted(ids, sorted(candidates))]
        one = queries[q : q + 1]
        expected = k_reciprocal_rerank(
            cosine_to_sq_euclidean(one @ g.T),
            cosine_to_sq_euclidean(one @ one.T),
            cosine_to_sq_euclidean(g @ g.T),
            k1=4,
            k2=2,
            lambda_value=0.3,
        )[0]
        order = np.lexsort((sorted(candidates), expected))[:5]
        assert [h.id for h in row] == [sorted(candidates)[i] for i in order]
        np.testing.assert_allclose([h.score for h in row], 1 - expected[order], atol=1e-6)
        # A query's hits do not depend on the other queries of the batch.
        (alone,) = gallery.search(queries[q : q + 1], k=5, rerank=config)
        assert [h.id for h in alone] == [h.id for h in row]
        np.testing.assert_allclose([h.score for h in alone], [h.score for h in row], atol=1e-6)


def test_fingerprint_and_dim_mismatch_are_refused(filled, backend, location):
    store, vectors, _ = filled
    with pytest.raises(ModelMismatch) as refused:
        store.add([GalleryItem(vector=vectors[0], key="x")], fingerprint="model-b")
    _assert_names_both_models(refused.value)
    with pytest.raises(ModelMismatch):
        store.search(vectors[:1], fingerprint="model-b")
    with pytest.raises(ModelMismatch):
        store.add([GalleryItem(vector=np.ones(DIM + 1, dtype=np.float32), key="y")])
    store.close()
    with pytest.raises(ModelMismatch) as refused:
        open_on(backend, location, fingerprint="model-b")
    _assert_names_both_models(refused.value)
    with pytest.raises(ModelMismatch, match=f"{DIM}-d.*{DIM * 2}-d"):
        open_on(backend, location, dim=DIM * 2)


def test_missing_gallery_needs_dim(backend, tmp_path):
    with pytest.raises(GalleryError, match="dim"):
        open_on(backend, LOCATIONS[backend](tmp_path))


def test_reopen_keeps_items_identity_and_id_counter(filled, backend, location):
    store, vectors, ids = filled
    store.delete([ids[-1]])
    store.save()
    store.close()
    with open_on(backend, location, dim=DIM, fingerprint="model-a") as again:
        assert (again.count(), again.dim, again.fingerprint) == (39, DIM, "model-a")
        assert again.lookup(["k7"]) == [ids[7]]
        assert again.search(vectors[7:8], k=1)[0][0].id == ids[7]
        (new_id,) = again.add([GalleryItem(vector=vectors[0], key="later")])
        assert new_id > ids.max()


def test_closed_store_refuses_calls(store):
    store.close()
    with pytest.raises(GalleryError, match="closed"):
        store.count()


def test_stats_and_export(filled, tmp_path):
    store, vectors, ids = filled
    store.delete([ids[2]])
    stats = store.stats()
    assert (stats.count, stats.dim, stats.fingerprint) == (39, DIM, "model-a")
    out = store.export(tmp_path / "export")
    keep = np.arange(40) != 2
    np.testing.assert_allclose(np.load(out / "vectors.npy"), vectors[keep], atol=1e-6)
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rows] == list(range(39))
    assert [r["id"] for r in rows] == ids[keep].tolist()
    assert rows[5] == {
        "row": 5,
        "id": int(ids[6]),
        **item_fields(
            key="k6",
            person_id=1,
            source="/crops/6.jpg",
            timestamp=60.0,
            metadata={"i": 6},
            track_id="t3",
            inserted_at=START,
        ),
    }
    assert json.loads((out / "gallery.json").read_text())["count"] == 39
    with pytest.raises(GalleryError, match="already exists"):
        store.export(out)


def test_index_kind_names_the_default_exact_index(store, backend):
    assert store.index_kind == ("Flat" if backend == "faiss" else "FLAT")
    assert store.stats().index == store.index_kind


def test_backend_knobs_travel_in_their_own_parameter_object(filled, backend):
    store, vectors, _ = filled
    knobs = FaissSearchParams(nprobe=4, ef_search=32)
    if backend == "faiss":
        assert store.search(vectors[:1], k=1, params=knobs)[0][0].key == "k0"
    else:
        with pytest.raises(ConfigError, match="milvus backend does not take FaissSearchParams"):
            store.search(vectors[:1], k=1, params=knobs)


def test_stats_have_common_fields_and_a_backend_section(filled, backend):
    store, _, ids = filled
    stats = store.stats()
    assert (stats.backend, stats.count, stats.index) == (backend, 40, store.index_kind)
    if backend == "faiss":
        assert (stats.details["trained"], stats.details["index_vectors"]) == (True, 40)
    else:  # nothing FAISS-only made up for Milvus
        assert stats.details["last_id"] == ids.max()
        assert not {"trained", "device", "snapshot_seq"} & set(stats.details)


@pytest.mark.parametrize("group_by", ["person_id", "track_id"])
def test_group_by_returns_k_groups_each_scored_by_its_best_crop(filled, group_by):
    store, vectors, ids = filled
    items = make_items(vectors)
    queries = unit_vectors(3, DIM, seed=5)
    for query, row in zip(queries, store.search(queries, k=4, group_by=group_by), strict=True):
        best: dict = {}  # reference: each group's best crop; an item without the field is its own group
        for item, item_id, score in sorted(
            zip(items, ids, vectors @ query, strict=True), key=lambda t: -t[2]
        ):
            value = getattr(item, group_by)
            best.setdefault(("item", item_id) if value is None else value, (int(item_id), float(score)))
        want = sorted(best.values(), key=lambda pair: -pair[1])[:4]
        assert [hit.id for hit in row] == [item_id for item_id, _ in want]
        assert [hit.score for hit in row] == pytest.approx([score for _, score in want], abs=1e-5)


def test_grouping_keeps_fetching_until_it_has_k_groups(store):
    # 30 crops of person 1 around the query crowd out everyone else in the first round of candidates.
    rng = np.random.default_rng(3)
    query = unit_vectors(1, DIM, seed=9)
    near = query + 0.05 * rng.standard_normal((30, DIM))
    far = unit_vectors(5, DIM, seed=10)
    vectors = np.concatenate([near / np.linalg.norm(near, axis=1, keepdims=True), far]).astype(np.float32)
    people = [1] * 30 + [2, 3, 4, 5, 6]
    store.add([GalleryItem(vector=v, person_id=p) for v, p in zip(vectors, people, strict=True)])
    hits = store.search(query, k=3, group_by="person_id")[0]
    assert len({hit.person_id for hit in hits}) == 3
    assert hits[0].person_id == 1
    assert len(store.search(query, k=10, group_by="person_id")[0]) == 6  # every group, then no more


def test_grouping_combines_with_filters_and_reranking(filled):
    store, _, _ = filled
    query = unit_vectors(1, DIM, seed=6)
    allowed = Filters(cameras_in={0, 1})
    for rerank in (None, RerankConfig(top_n=20)):
        hits = store.search(query, k=5, filters=allowed, rerank=rerank, group_by="person_id")[0]
        assert len(hits) == 5
        assert len({hit.person_id for hit in hits}) == 5
        assert all(hit.camera_id in {0, 1} for hit in hits)
        assert is_best_first([hit.score for hit in hits])


def test_min_score_drops_weaker_hits(filled):
    store, vectors, _ = filled
    query = unit_vectors(1, DIM, seed=7)
    hits = store.search(query, k=40, min_score=0.2)[0]
    assert len(hits) == int((vectors @ query[0] >= 0.2).sum()) > 0
    assert min(hit.score for hit in hits) >= 0.2
    grouped = store.search(query, k=40, min_score=0.2, group_by="person_id")[0]
    assert 0 < len(grouped) < len(hits)


def test_bad_grouping_options_are_refused(filled):
    store, _, _ = filled
    with pytest.raises(ConfigError, match="group_by"):
        store.search(unit_vectors(1, DIM), group_by="camera_id")
    with pytest.raises(ConfigError, match="min_score"):
        store.search(unit_vectors(1, DIM), min_score=float("nan"))
