"""Fixtures shared by the gallery tests."""

import faiss
import numpy as np
import pytest

from reid.gallery import open_gallery
from tests.gallery.helpers import make_items, unit_vectors


@pytest.fixture(autouse=True, scope="session")
def _single_faiss_thread():
    """Tiny indexes gain nothing from OpenMP, and its spinning threads crawl on a busy 2-core box."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture
def gallery_dir(tmp_path):
    return tmp_path / "gallery"


@pytest.fixture
def filled(gallery_dir):
    """A 16-d exact gallery of 120 items (see make_items), its vectors and ids."""
    vectors = unit_vectors(120, 16)
    gallery = open_gallery(gallery_dir, dim=16, fingerprint="model-a")
    ids = gallery.add(make_items(vectors))
    yield gallery, vectors, np.asarray(ids)
    gallery.close()
