"""Weights by name or URL end to end: the download goes through the strict loader, gets a manifest with
the zoo's facts, and those facts (input size, head, stem) reach the extractor."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from reid.checkpoints import load_checkpoint, read_manifest
from reid.engine import EngineOptions, Extractor, load_extractor
from reid.errors import (
    CheckpointError,
    ConfigError,
    HashMismatch,
    InsecureURL,
    OfflineMissing,
    UnknownWeights,
)
from reid.preprocess import PreprocessConfig
from reid.zoo.cache import entry_dir, url_dir
from reid.zoo.options import ZooOptions
from reid.zoo.resolve import resolve_weights
from tests.zoo.helpers import SBS_LIKE, LoopbackServer, write_zoo

CPU = EngineOptions(device="cpu", max_batch_size=2)


def _zoo(server: LoopbackServer, tmp_path: Path, **extra: object) -> Path:
    url = server.url("model.pth")
    return write_zoo(
        tmp_path / "zoo.json",
        {
            "test/sbs_tiny": {"family": "tiny-sbs", "url": url, "architecture": "resnet18_ibn_a", **extra},
            "test/agw_tiny": {"family": "tiny-agw", "url": url, "architecture": "resnet18_ibn_a", **extra},
            "test/wrong_arch": {"family": "tiny-sbs", "url": url, "architecture": "resnet50_ibn_a"},
        },
    )


def _load(name: str, options: ZooOptions) -> Extractor:
    return load_extractor(name, options=CPU, zoo=options, decode_workers=1)


def test_a_zoo_entry_preprocessing_reaches_the_extractor(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path, checkpoint_bytes: bytes
) -> None:
    options = ZooOptions(home=isolated_cache, zoo_file=_zoo(server, tmp_path))
    extractor = _load("test/sbs_tiny", options)
    try:
        assert extractor.input_size == (384, 128)
        expected = PreprocessConfig.fastreid(height=384, width=128)
        # The file's own pixel statistics (float32) are fast-reid's ImageNet × 255.
        assert extractor.preprocess.mean == pytest.approx(expected.mean)
        assert extractor.preprocess.std == pytest.approx(expected.std)
        assert dataclasses.replace(extractor.preprocess, mean=expected.mean, std=expected.std) == expected
        # The zoo's stem (the v0.1.1 files predate fast-reid's ceil-mode pool) wins over inference.
        assert extractor.config.backbone.stem_pool == "pad"
        assert extractor.config == dataclasses.replace(
            SBS_LIKE, backbone=SBS_LIKE.backbone.replace(stem_pool="pad")
        )
        embedding = extractor.embed_batch(torch.zeros((1, 3, 384, 128), dtype=torch.uint8))
        assert embedding.shape == (1, 512)
        weights = extractor.info()["weights"]
        assert weights["name"] == "test/sbs_tiny"
        assert weights["url"] == server.url("model.pth")
        assert weights["sha256"] == hashlib.sha256(checkpoint_bytes).hexdigest()
    finally:
        extractor.close()
    path = entry_dir(isolated_cache, "test/sbs_tiny") / "model.pth"
    manifest = read_manifest(path)
    assert manifest is not None
    assert (manifest.zoo, manifest.url, manifest.source) == (
        "test/sbs_tiny",
        server.url("model.pth"),
        "fast-reid",
    )
    assert manifest.sha256 == hashlib.sha256(checkpoint_bytes).hexdigest()
    assert (manifest.preprocess.height, manifest.preprocess.width) == (384, 128)
    # Any later load of the cached file, even by path, rebuilds what the zoo describes.
    assert load_checkpoint(path).config == extractor.config


def test_the_zoo_input_size_wins_over_the_sbs_guess(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path
) -> None:
    # Non-local units + GeM look like SBS (384×128) to the loader; AGW is trained at 256×128.
    path = tmp_path / "plain.pth"
    options = ZooOptions(home=isolated_cache, zoo_file=_zoo(server, tmp_path))
    resolved = resolve_weights("test/agw_tiny", options, progress=False)
    path.write_bytes(resolved.path.read_bytes())
    assert load_checkpoint(path).preprocess.height == 384
    assert load_checkpoint(resolved.path).preprocess.height == 256


def test_names_and_urls_are_fetched_once_and_then_served_from_the_cache(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path
) -> None:
    options = ZooOptions(home=isolated_cache, zoo_file=_zoo(server, tmp_path))
    first = resolve_weights("test/sbs_tiny", options, progress=False)
    again = resolve_weights("test/sbs_tiny", options, progress=False)
    assert first == again
    assert server.requests("model.pth") == 1
    # The zoo's URL is the zoo's entry (same folder, same facts); another URL is cached by its own.
    by_url = resolve_weights(server.url("model.pth"), options, progress=False)
    assert by_url.origin is not None
    assert by_url.origin.name in ("test/sbs_tiny", "test/agw_tiny", "test/wrong_arch")
    server.files["other.pth"] = server.files["model.pth"]
    plain = resolve_weights(server.url("other.pth", "redirect"), options, progress=False)
    assert plain.path == url_dir(isolated_cache, server.url("other.pth", "redirect")) / "other.pth"
    assert plain.origin is not None
    assert (plain.origin.name, plain.origin.metrics) == (None, ())
    manifest = read_manifest(plain.path)
    assert manifest is not None
    assert (manifest.zoo, manifest.preprocess.height) == ("", 384)  # inferred: SBS-like keys


def test_the_zoo_neck_feature_wins_over_inference(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path
) -> None:
    options = ZooOptions(home=isolated_cache, zoo_file=_zoo(server, tmp_path, neck_feat="before"))
    path = resolve_weights("test/agw_tiny", options, progress=False).path
    loaded = load_checkpoint(path)
    assert (loaded.config.neck_feat, loaded.config.bnneck) == ("before", True)
    x = torch.rand(2, 3, 64, 32)
    with torch.inference_mode():
        pooled = loaded.model.head.pool(loaded.model.backbone.forward_features(x)).flatten(1)
        assert torch.allclose(loaded.model(x), pooled)


def test_a_complete_cache_entry_is_read_without_writing(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path
) -> None:
    # A volume pre-pulled into an image may be read-only: loading it takes no lock and writes nothing.
    options = ZooOptions(home=isolated_cache, zoo_file=_zoo(server, tmp_path), offline=True)
    resolve_weights("test/sbs_tiny", dataclasses.replace(options, offline=False), progress=False)
    folder = entry_dir(isolated_cache, "test/sbs_tiny")
    (folder / ".lock").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    resolve_weights("test/sbs_tiny", options)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_offline_with_and_without_a_cached_entry(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path
) -> None:
    zoo_file = _zoo(server, tmp_path)
    offline = ZooOptions(home=isolated_cache, zoo_file=zoo_file, offline=True)
    with pytest.raises(OfflineMissing, match="test/sbs_tiny is not in the weights cache"):
        resolve_weights("test/sbs_tiny", offline)
    assert server.requests("model.pth") == 0
    assert not isolated_cache.exists()  # a read-only or absent cache gets the same clear error
    resolve_weights("test/sbs_tiny", ZooOptions(home=isolated_cache, zoo_file=zoo_file), progress=False)
    extractor = _load("test/sbs_tiny", offline)
    try:
        assert extractor.input_size == (384, 128)
    finally:
        extractor.close()
    assert server.requests("model.pth") == 1


def test_offline_from_the_environment(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REID_ZOO_FILE", str(_zoo(server, tmp_path)))
    monkeypatch.setenv("REID_OFFLINE", "1")
    with pytest.raises(OfflineMissing, match="test/agw_tiny"):
        load_extractor("test/agw_tiny", options=CPU)
    monkeypatch.setenv("REID_OFFLINE", "maybe")
    with pytest.raises(ConfigError, match="REID_OFFLINE must be"):
        load_extractor("test/agw_tiny", options=CPU)


def test_a_wrong_hash_is_refused_and_nothing_is_cached(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path, checkpoint_bytes: bytes
) -> None:
    wrong = "f" * 64
    options = ZooOptions(home=isolated_cache, zoo_file=_zoo(server, tmp_path, sha256=wrong))
    with pytest.raises(HashMismatch) as caught:
        resolve_weights("test/sbs_tiny", options, progress=False)
    assert wrong in str(caught.value)
    assert hashlib.sha256(checkpoint_bytes).hexdigest() in str(caught.value)
    assert not (entry_dir(isolated_cache, "test/sbs_tiny") / "model.pth").exists()


def test_a_tampered_cache_file_is_caught_on_the_next_load(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path
) -> None:
    options = ZooOptions(home=isolated_cache, zoo_file=_zoo(server, tmp_path))
    path = resolve_weights("test/sbs_tiny", options, progress=False).path
    with path.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(HashMismatch, match="recorded when it was first downloaded"):
        resolve_weights("test/sbs_tiny", options, progress=False)


def test_a_file_that_is_not_the_listed_architecture_is_refused(
    server: LoopbackServer, tmp_path: Path, isolated_cache: Path
) -> None:
    options = ZooOptions(home=isolated_cache, zoo_file=_zoo(server, tmp_path))
    with pytest.raises(CheckpointError, match="holds a resnet18_ibn_a, the zoo lists a resnet50_ibn_a"):
        resolve_weights("test/wrong_arch", options, progress=False)


def test_paths_pass_through_and_bad_values_are_clear(tmp_path: Path, isolated_cache: Path) -> None:
    options = ZooOptions(home=isolated_cache)
    folder = tmp_path / "fastreid" / "market_bot_R50"
    folder.mkdir(parents=True)
    assert resolve_weights(folder, options).path == folder  # an existing path wins over a zoo name
    assert resolve_weights("no/such/file.pth", options).origin is None
    with pytest.raises(UnknownWeights, match="did you mean fastreid/market_sbs_R50-ibn"):
        resolve_weights("fastreid/market_sbs_R50_ibn", options)
    with pytest.raises(InsecureURL):
        resolve_weights("http://example.com/model.pth", options)
    with pytest.raises(ConfigError, match="does not exist"):
        load_extractor("missing-folder", options=CPU, zoo=options)
    assert not isolated_cache.exists()  # nothing above touched the network or the cache
