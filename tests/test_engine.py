"""The inference engine: precision paths, flip TTA, batching invariance, loading rules."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from reid.engine import EngineOptions, Extractor, find_checkpoint, load_extractor
from reid.errors import ConfigError
from reid.models import reid_config
from reid.preprocess import PreprocessConfig
from tests.helpers import calibrated_extractor, cosine, jpeg_bytes, smooth_images


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return calibrated_extractor()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return smooth_images(8, 64, 32, seed=7)


def test_embeddings_are_unit_norm_and_spread(extractor: Extractor, images: torch.Tensor) -> None:
    emb = extractor.embed_batch(images)
    assert emb.shape == (8, 512)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Calibrated: different pictures are clearly apart (a random-init model gives cosine ~0.999).
    off_diagonal = (emb @ emb.T)[~np.eye(8, dtype=bool)]
    assert off_diagonal.mean() < 0.95


def test_batch_size_invariance(extractor: Extractor, images: torch.Tensor) -> None:
    together = extractor.embed_batch(images)
    alone = np.concatenate([extractor.embed_batch(images[i : i + 1]) for i in range(8)])
    gap = 1 - cosine(together[0], together[1])
    assert np.abs(together - alone).max() < 1e-5
    assert gap > 1e-3  # the tolerance above is far below the distance between two images


def test_chunking_by_max_batch_size_changes_nothing(images: torch.Tensor) -> None:
    small = calibrated_extractor(options=EngineOptions(device="cpu", max_batch_size=3))
    big = calibrated_extractor(options=EngineOptions(device="cpu", max_batch_size=64))
    np.testing.assert_allclose(small.embed_batch(images), big.embed_batch(images), atol=1e-5)


def test_bf16_close_to_fp32_relative_to_image_distance(images: torch.Tensor) -> None:
    fp32 = calibrated_extractor(options=EngineOptions(device="cpu", dtype="fp32"))
    bf16 = calibrated_extractor(options=EngineOptions(device="cpu", dtype="bf16"))
    a, b = fp32.embed_batch(images), bf16.embed_batch(images)
    assert bf16.dtype == torch.bfloat16
    err = 1 - cosine(a, b)
    between_images = 1 - cosine(a[:-1], a[1:])
    assert cosine(a, b).min() >= 0.999
    assert err.max() < 0.05 * between_images.min()


def test_flip_tta_differs_and_is_normalised(images: torch.Tensor) -> None:
    plain = calibrated_extractor().embed_batch(images)
    flipped = calibrated_extractor(options=EngineOptions(device="cpu", flip=True)).embed_batch(images)
    np.testing.assert_allclose(np.linalg.norm(flipped, axis=1), 1.0, atol=1e-5)
    assert np.abs(flipped - plain).max() > 1e-3
    # A left-right symmetric picture is its own mirror: TTA must not change it.
    sym = images[:1].clone()
    sym[..., 16:] = sym[..., :16].flip(-1)
    tta = calibrated_extractor(options=EngineOptions(device="cpu", flip=True))
    np.testing.assert_allclose(tta.embed_batch(sym), calibrated_extractor().embed_batch(sym), atol=1e-5)


def test_embed_from_bytes_and_paths_match(extractor: Extractor, images: torch.Tensor, tmp_path: Path) -> None:
    blobs = [jpeg_bytes(img) for img in images[:3]]
    paths = []
    for i, blob in enumerate(blobs):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(blob)
        paths.append(str(p))
    np.testing.assert_allclose(extractor.embed(blobs), extractor.embed(paths), rtol=0, atol=1e-6)
    assert extractor.embed([]).shape == (0, 512)


def test_raw_features_are_not_normalised(extractor: Extractor, images: torch.Tensor) -> None:
    raw = extractor.embed_batch(images, normalize_output=False)
    unit = extractor.embed_batch(images)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-5)


def test_wrong_batch_shape_is_refused(extractor: Extractor) -> None:
    with pytest.raises(ConfigError, match="uint8"):
        extractor.embed_batch(torch.zeros((1, 3, 32, 32), dtype=torch.uint8))
    with pytest.raises(ConfigError, match="uint8"):
        extractor.embed_batch(torch.zeros((1, 3, 64, 32)))


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="fp16"):
        EngineOptions(device="cpu", dtype="fp16").resolve_dtype(torch.device("cpu"))


def test_fingerprint_tracks_weights() -> None:
    a, b = calibrated_extractor(seed=0), calibrated_extractor(seed=1)
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == calibrated_extractor(seed=0).fingerprint
    assert a.fingerprint.startswith("resnet18-")
    flipped = calibrated_extractor(seed=0, options=EngineOptions(device="cpu", flip=True))
    assert flipped.fingerprint == a.fingerprint + "+flip"


def test_find_checkpoint_rules(tmp_path: Path) -> None:
    assert find_checkpoint(tmp_path) is None
    (tmp_path / "README.md").write_text("not a checkpoint")
    assert find_checkpoint(tmp_path) is None
    (tmp_path / "a.safetensors").write_bytes(b"")
    assert find_checkpoint(tmp_path) == tmp_path / "a.safetensors"
    (tmp_path / "b.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match="several checkpoints"):
        find_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        find_checkpoint(tmp_path / "missing")


def test_empty_weights_folder_warns_loudly_and_uses_random_init(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        extractor = load_extractor(
            tmp_path,
            options=EngineOptions(device="cpu"),
            config=reid_config("resnet18"),
            preprocess=PreprocessConfig(height=64, width=32),
        )
    assert "RANDOMLY INITIALISED" in caplog.text
    assert extractor.embed_batch(smooth_images(1, 64, 32)).shape == (1, 512)


def test_default_product_model_embeds_2048_d() -> None:
    """The one full-size forward: SE-IBN-ResNet50, last_stride=1, 256×128."""
    extractor = Extractor.random_init(options=EngineOptions(device="cpu"))
    assert extractor.config.backbone_name == "se_resnet50_ibn_a"
    assert extractor.config.backbone.last_stride == 1
    emb = extractor.embed_batch(smooth_images(1, 256, 128))
    assert emb.shape == (1, 2048)
    assert abs(float(np.linalg.norm(emb)) - 1) < 1e-5


def test_batchnorm_folding_changes_nothing(images: torch.Tensor) -> None:
    folded = calibrated_extractor(options=EngineOptions(device="cpu", fold_bn=True)).embed_batch(images)
    plain = calibrated_extractor(options=EngineOptions(device="cpu", fold_bn=False)).embed_batch(images)
    between_images = 1 - cosine(plain[:-1], plain[1:])
    assert np.abs(folded - plain).max() < 1e-4
    assert between_images.min() > 100 * np.abs(folded - plain).max()


@pytest.mark.slow
def test_compiled_engine_matches_eager_for_every_batch_size(images: torch.Tensor) -> None:
    eager = calibrated_extractor()
    compiled = calibrated_extractor(options=EngineOptions(device="cpu", compile=True, max_batch_size=8))
    for n in (1, 3, 8):
        np.testing.assert_allclose(compiled.embed_batch(images[:n]), eager.embed_batch(images[:n]), atol=1e-4)
