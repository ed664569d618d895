"""Fixtures shared by the gallery tests: a gallery on every backend, with a clock the test controls."""

import faiss
import numpy as np
import pytest

from reid.gallery import StoreOptions, open_gallery
from reid.gallery.registry import BACKENDS, storage_class
from tests.gallery.helpers import make_items, unit_vectors

DIM = 16
# Where each backend keeps a test gallery; every registered backend must have an entry (and pass).
LOCATIONS = {"faiss": lambda tmp: tmp / "gallery", "milvus": lambda tmp: str(tmp / "milvus.db")}
NEEDS = {"milvus": "milvus_lite"}  # the optional package a backend's tests skip without
START = 1_700_000_000.0  # the test clock's first reading, POSIX seconds


class Clock:
    """A clock the test moves: ``clock()`` reads it, ``clock.advance(s)`` moves it on."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True, scope="session")
def _single_faiss_thread():
    """Tiny indexes gain nothing from OpenMP, and its spinning threads crawl on a busy 2-core box."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def open_on(backend, location, **kwargs):
    """``open_gallery`` on ``backend``, skipping when its optional package is missing."""
    if backend in NEEDS:
        pytest.importorskip(NEEDS[backend])
    gallery = open_gallery(location, backend=backend, **kwargs)
    assert type(gallery.storage) is storage_class(backend)
    return gallery


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def location(backend, tmp_path):
    return LOCATIONS[backend](tmp_path)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(backend, location, clock):
    """An empty 16-d gallery with fingerprint "model-a", on the test's clock."""
    gallery = open_on(backend, location, dim=DIM, fingerprint="model-a", store=StoreOptions(clock=clock))
    yield gallery
    gallery.close()


@pytest.fixture
def filled(store):
    """The store holding 40 items (see make_items), stored at START, their vectors and ids."""
    vectors = unit_vectors(40, DIM)
    ids = store.add(make_items(vectors), fingerprint="model-a")
    return store, vectors, np.asarray(ids)
