"""Opening a gallery: open_gallery's backend options and the GallerySpec value."""

from pathlib import Path

import pytest

from reid.errors import ConfigError, GalleryError
from reid.gallery import GallerySpec, open_gallery
from tests.gallery.helpers import unit_vectors

DIM = 16


def test_open_gallery_refuses_options_of_another_backend(tmp_path):
    # The overloads reject these calls statically; callers without type checking get a ConfigError.
    with pytest.raises(ConfigError, match="backend"):
        open_gallery(tmp_path / "g", dim=DIM, backend="qdrant")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="collection"):
        open_gallery(tmp_path / "g", dim=DIM, collection="c")
    with pytest.raises(ConfigError, match="nprobe"):
        open_gallery(str(tmp_path / "m.db"), dim=DIM, backend="milvus", nprobe=4)
    assert not (tmp_path / "g").exists()
    assert not (tmp_path / "m.db").exists()


def test_spec_describes_where_the_gallery_lives(tmp_path):
    faiss = GallerySpec(tmp_path / "g")
    lite = GallerySpec(str(tmp_path / "m.db"), backend="milvus")
    server = GallerySpec("http://milvus:19530", backend="milvus", collection="shop")
    assert (str(faiss), faiss.local_dir, faiss.is_remote) == (str(tmp_path / "g"), tmp_path / "g", False)
    assert (lite.local_dir, str(server)) == (tmp_path, "milvus http://milvus:19530 (collection shop)")
    assert (server.is_remote, server.local_dir) == (True, Path.cwd())
    with pytest.raises(ConfigError, match="Milvus backend only"):
        GallerySpec(tmp_path / "g", collection="c")
    with pytest.raises(ConfigError, match="unknown gallery backend"):
        GallerySpec(tmp_path / "g", backend="qdrant")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_a_read_only_open_never_creates(tmp_path, backend):
    if backend == "milvus":
        pytest.importorskip("milvus_lite")
    spec = GallerySpec(tmp_path / "g" if backend == "faiss" else str(tmp_path / "m.db"), backend=backend)
    with pytest.raises(GalleryError, match="no gallery"):
        spec.open(dim=DIM, read_only=True)
    spec.open(dim=DIM, fingerprint="m").close()
    with spec.open(read_only=True) as gallery:
        assert (gallery.dim, gallery.fingerprint, gallery.count()) == (DIM, "m", 0)
        assert gallery.search(unit_vectors(1, DIM), k=1) == [[]]
