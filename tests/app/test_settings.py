from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings


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
    assert Settings().weights == Path("weights")


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
