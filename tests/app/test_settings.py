from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import ENGINE_OPTIONS, Settings
from reid.engine import EngineOptions
from reid.gallery import GallerySpec


def test_environment_variables_with_prefix(monkeypatch):
    monkeypatch.setenv("REID_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("reid_flip", "true")
    monkeypatch.setenv("REID_API_KEY", "s3cr3t-value")
    monkeypatch.setenv("REID_GALLERY_DIR", "/data/g")
    settings = Settings()
    assert (settings.max_batch_size, settings.flip, settings.gallery_dir) == (8, True, Path("/data/g"))
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings)
    assert settings.warmup_batch_sizes() == (1, 8)
    options = settings.engine_options()
    assert (options.max_batch_size, options.flip) == (8, True)


def test_blank_weights_means_random_weights(monkeypatch):
    monkeypatch.setenv("REID_WEIGHTS", " ")
    assert Settings().weights is None
    monkeypatch.delenv("REID_WEIGHTS")
    assert Settings().weights == "weights"


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_images_per_request": 65, "max_queue": 64},
        {"max_batch_size": 0},
        {"dtype": "int8"},
        {"max_batch_delay_ms": -1},
    ],
)
def test_impossible_settings_are_refused(overrides):
    with pytest.raises(ValidationError):
        Settings(**overrides)


def test_the_gallery_lives_on_the_chosen_backend(monkeypatch):
    faiss = Settings(gallery_dir=Path("g"), index="HNSW32")
    assert faiss.gallery_spec() == GallerySpec(Path("g"), index="HNSW32")
    assert Settings(gallery_dir=None).gallery_spec() is None
    monkeypatch.setenv("REID_GALLERY_BACKEND", "milvus")
    monkeypatch.setenv("REID_MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("REID_MILVUS_COLLECTION", "shop")
    assert Settings(gallery_dir=None).gallery_spec() == GallerySpec(
        "http://milvus:19530", backend="milvus", collection="shop"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gallery_backend": "milvus"}, "needs REID_MILVUS_URI"),
        ({"gallery_backend": "milvus", "milvus_uri": " "}, "needs REID_MILVUS_URI"),
        ({"gallery_backend": "milvus", "milvus_uri": "g.db", "rerank_top_n": 20000}, "Milvus's limit"),
        ({"gallery_backend": "qdrant"}, "gallery_backend"),
    ],
)
def test_milvus_settings_are_checked_up_front(overrides, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**overrides)


def test_weights_default_to_the_weights_folder_only_when_it_exists(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REID_WEIGHTS", raising=False)
    assert Settings().weights_source() is None  # random weights, as every CLI command does
    (tmp_path / "weights").mkdir()
    assert Settings().weights_source() == "weights"


def test_explicit_weights_are_loaded_even_when_missing(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REID_WEIGHTS", "weights")
    assert Settings().weights_source() == "weights"  # the loader then says it does not exist
    monkeypatch.setenv("REID_WEIGHTS", "")
    assert Settings().weights_source() is None


def test_engine_settings_are_the_engine_options(monkeypatch):
    for name in ENGINE_OPTIONS:
        monkeypatch.delenv(f"REID_{name.upper()}", raising=False)
    assert Settings().engine_options() == EngineOptions()  # the same defaults in the service and the CLI
    for name, option in ENGINE_OPTIONS.items():
        declared = Settings.model_fields[name]
        assert (declared.default, declared.description) == (option.default, option.metadata["help"])
