import faiss
import numpy as np
import pytest

from reid.errors import ConfigError, GalleryError
from reid.gallery.backends.faiss.index import VectorIndex, build_index, default_train_size
from reid.gallery.backends.faiss.params import FaissSearchParams
from tests.gallery.helpers import brute_force, unit_vectors

DIM = 16
NO_TUNING = FaissSearchParams()


def _filled(factory, n=300, **kwargs):
    index = VectorIndex(factory, DIM, **kwargs)
    vectors = unit_vectors(n, DIM)
    ids = np.arange(10, 10 + n)  # gallery ids start at 1 and need not match FAISS positions
    index.add(vectors, ids)
    return index, vectors, ids


@pytest.mark.parametrize("factory", ["NoSuchIndex", "PQ3", "IDMap2,Flat"])
def test_bad_factories_are_config_errors(factory):
    with pytest.raises(ConfigError):
        build_index(factory, DIM)


@pytest.mark.parametrize(
    ("factory", "expected"), [("Flat", 1024), ("IVF64,Flat", 2560), ("PQ4", 10240), ("IVF16,PQ4x4", 1024)]
)
def test_default_train_size(factory, expected):
    assert default_train_size(build_index(factory, DIM)) == expected


def _ivf_pq(index):
    return faiss.downcast_index(faiss.extract_index_ivf(index))


def test_ivf_pq_skips_polysemous_training():
    assert _ivf_pq(faiss.index_factory(DIM, "IVF8,PQ4")).do_polysemous_training  # FAISS's default
    built = _ivf_pq(build_index("IVF8,PQ4", DIM))
    assert not built.do_polysemous_training
    assert built.polysemous_ht == 0  # searches never use the codes it would have trained


# Kinds whose search can be made exact here: Flat, IVF probing every list, HNSW over a small graph.
EXACT_KINDS = [
    ("Flat", FaissSearchParams()),
    ("IVF4,Flat", FaissSearchParams(nprobe=4)),
    ("HNSW16", FaissSearchParams(ef_search=300)),
]


@pytest.mark.parametrize("n_queries", [5, 25])  # below and above BLAS_MAX_QUERIES
@pytest.mark.parametrize(("factory", "tuning"), EXACT_KINDS)
def test_filtered_search_equals_brute_force(factory, tuning, n_queries):
    index, vectors, ids = _filled(factory, train_size=200)
    allowed = np.zeros(ids.max() + 1, dtype=bool)
    allowed[ids[ids % 3 == 0]] = True
    queries = unit_vectors(n_queries, DIM, seed=1)
    scores, found = index.search(queries, 7, allowed=allowed, knobs=tuning)
    keep = allowed[ids]
    expected = brute_force(vectors[keep], ids[keep], queries, 7)
    assert found.tolist() == [want for want, _ in expected]
    np.testing.assert_allclose(scores, [s for _, s in expected], atol=1e-5)


def test_nprobe_changes_ivf_recall():
    index, vectors, ids = _filled("IVF16,Flat", n=600, train_size=600)
    queries = unit_vectors(40, DIM, seed=2)
    expected = [want for want, _ in brute_force(vectors, ids, queries, 10)]

    def recall(nprobe):
        _, found = index.search(queries, 10, allowed=None, knobs=FaissSearchParams(nprobe=nprobe))
        return np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found.tolist(), expected, strict=True)])

    assert recall(16) == 1.0
    assert recall(1) < 0.9


def test_indexes_without_selectors_over_fetch():
    index, _, ids = _filled("PQ4x4np", n=1200)
    assert index.is_trained
    queries = unit_vectors(3, DIM, seed=3)
    allowed = np.zeros(ids.max() + 1, dtype=bool)
    allowed[ids[::5]] = True
    _, found = index.search(queries, 6, allowed=allowed, knobs=NO_TUNING)
    assert not index._selectors_work  # IndexPQ refused the IDSelector
    # The over-fetch result is the unfiltered PQ ranking with disallowed ids dropped.
    _, ranking = index.search(queries, len(ids), allowed=None, knobs=NO_TUNING)
    for row, full in zip(found, ranking, strict=True):
        assert row.tolist() == [i for i in full if allowed[i]][:6]


def test_overfetch_returns_fewer_hits_when_few_pass():
    index, _, ids = _filled("PQ4x4np", n=1200)
    allowed = np.zeros(ids.max() + 1, dtype=bool)
    allowed[ids[:2]] = True
    _, found = index.search(unit_vectors(1, DIM, seed=4), 5, allowed=allowed, knobs=NO_TUNING)
    assert sorted(found[0][found[0] >= 0].tolist()) == ids[:2].tolist()
    assert (found[0] == -1).sum() == 3


@pytest.mark.parametrize(("factory", "removes"), [("Flat", True), ("IVF4,Flat", True), ("HNSW16", False)])
def test_remove_and_stored_ids(factory, removes):
    index, _, ids = _filled(factory, train_size=100)
    index.remove(ids[:50])
    expected = ids[50:] if removes else ids
    assert index.ntotal == len(expected)
    assert sorted(index.ids().tolist()) == expected.tolist()


def test_training_waits_for_train_size_and_stays_exact_before():
    index = VectorIndex("IVF4,Flat", DIM, train_size=100)
    vectors = unit_vectors(150, DIM)
    index.add(vectors[:60], np.arange(1, 61))
    assert not index.is_trained
    assert index.ntotal == 60
    _, found = index.search(vectors[:3], 1, allowed=None, knobs=NO_TUNING)
    assert found[:, 0].tolist() == [1, 2, 3]
    index.add(vectors[60:], np.arange(61, 151))
    assert index.is_trained
    assert index.ntotal == 150
    assert sorted(index.ids().tolist()) == list(range(1, 151))
    with pytest.raises(GalleryError, match="already trained"):
        index.train(vectors)


def test_explicit_training_sample():
    index = VectorIndex("IVF4,Flat", DIM, train_size=10_000)
    index.add(unit_vectors(20, DIM), np.arange(1, 21))
    index.train(unit_vectors(400, DIM, seed=8))
    assert index.is_trained
    assert index.ntotal == 20


def test_cpu_only_build_stays_on_cpu():
    index, _, _ = _filled("Flat")
    index.use_gpu(None)
    assert index.device == "cpu"
    with pytest.raises(ConfigError, match="no GPU"):
        index.use_gpu(True)


def test_a_gpu_index_filters_without_selectors(monkeypatch):
    """FAISS's GPU indexes ignore a search-time selector without an error, so on one (the CPU index stands
    in for it here) a filter must be applied by over-fetching, never passed as a selector."""
    index, vectors, ids = _filled("Flat")
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda resources, device, cpu: cpu, raising=False)
    index.use_gpu(True)
    assert index.device == "gpu"
    sent = []
    search = index._search

    def spy(queries, k, params):
        sent.append(params)
        return search(queries, k, params)

    monkeypatch.setattr(index, "_search", spy)
    allowed = np.zeros(ids.max() + 1, dtype=bool)
    allowed[ids[ids % 3 == 0]] = True
    queries = unit_vectors(5, DIM, seed=1)
    _, found = index.search(queries, 7, allowed=allowed, knobs=NO_TUNING)
    keep = allowed[ids]
    assert found.tolist() == [want for want, _ in brute_force(vectors[keep], ids[keep], queries, 7)]
    assert sent
    assert all(params is None or params.sel is None for params in sent)


@pytest.mark.gpu
def test_gpu_index_matches_cpu():
    faiss = pytest.importorskip("faiss")
    if faiss.get_num_gpus() == 0:
        pytest.skip("FAISS sees no GPU")
    index, _, ids = _filled("Flat")
    queries = unit_vectors(5, DIM, seed=1)
    _, on_cpu = index.search(queries, 5, allowed=None, knobs=NO_TUNING)
    index.use_gpu(True)
    assert index.device == "gpu"
    _, on_gpu = index.search(queries, 5, allowed=None, knobs=NO_TUNING)
    assert on_gpu.tolist() == on_cpu.tolist()
    allowed = np.zeros(ids.max() + 1, dtype=bool)
    allowed[ids[::2]] = True
    _, filtered = index.search(queries, 5, allowed=allowed, knobs=NO_TUNING)
    assert allowed[filtered].all()
