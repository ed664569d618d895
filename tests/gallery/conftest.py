"""Fixtures shared by the gallery tests."""

import faiss
import pytest


@pytest.fixture(autouse=True, scope="session")
def _single_faiss_thread():
    """Tiny indexes gain nothing from OpenMP, and its spinning threads crawl on a busy 2-core box."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)
