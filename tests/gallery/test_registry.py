"""The backend registry: names only, backends imported on first use, no import cycle."""

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reid.errors import ConfigError
from reid.gallery.registry import _STORAGE, BACKENDS, check_backend, storage_class

REPO = Path(__file__).resolve().parents[2]

if TYPE_CHECKING:
    from reid.gallery.backends.faiss.storage import FaissStorage
    from reid.gallery.backends.milvus import MilvusStorage
    from reid.gallery.storage import Storage

    def _every_backend_is_a_storage(faiss: FaissStorage, milvus: MilvusStorage) -> list[Storage]:
        return [faiss, milvus]  # mypy checks both against the Storage protocol


def test_every_backend_name_has_a_storage_class():
    assert set(BACKENDS) == set(_STORAGE)
    faiss_storage = storage_class("faiss")
    assert faiss_storage.__name__ == "FaissStorage"  # type: ignore[attr-defined]
    assert "read_only" in faiss_storage.options


def test_unknown_backends_are_refused_naming_the_choices():
    with pytest.raises(
        ConfigError, match=r"unknown gallery backend 'qdrant'; choose one of \['faiss', 'milvus'\]"
    ):
        check_backend("qdrant")


@pytest.mark.parametrize("module", ["reid.gallery", "reid.cli.gallery", "reid.cli.filters", "app.schemas"])
def test_importing_the_gallery_imports_no_backend(module):
    code = f"import sys, {module}; print(sorted(m for m in ('faiss', 'pymilvus') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["reid.gallery.backends.milvus", "reid.gallery.backends.faiss.storage"])
def test_each_backend_imports_first_without_a_cycle(module):
    pytest.importorskip("pymilvus")
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, check=True)
