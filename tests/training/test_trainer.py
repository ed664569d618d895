import itertools
import json
import os
import subprocess
import sys

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file

from app.main import create_app
from reid.checkpoints import load_checkpoint, read_manifest
from reid.engine import EngineOptions, Extractor
from reid.errors import ConfigError
from reid.evaluation.runner import evaluate_market, extractor_embedder
from reid.training import train
from reid.training.checkpoint import servable
from reid.training.trainer import _build_model, learning_rate
from tests.app.helpers import settings_for, wait_ready


def _map(model, preprocess, market):
    served, fingerprint = servable(model, preprocess)
    extractor = Extractor(served, preprocess, fingerprint=fingerprint, options=EngineOptions(device="cpu"))
    try:
        return evaluate_market(market, extractor_embedder(extractor, progress=False)).metrics.mAP
    finally:
        extractor.close()


@pytest.fixture(scope="module")
def trained(trained_small, labelled_market, quick_recipe):
    """The shared trained model, its output folder, and the mAP of the same recipe before training."""
    model, preprocess = _build_model(quick_recipe, num_classes=12)
    return trained_small, _map(model, preprocess, labelled_market), trained_small.checkpoint.parent


def test_a_short_cpu_training_learns(trained):
    result, untrained, _ = trained
    assert [entry["epoch"] for entry in result.history] == [1, 2, 3, 4, 5, 6]
    evaluated = [entry["eval"]["mAP"] for entry in result.history if "eval" in entry]
    assert len(evaluated) == 2
    assert result.best_map == max(evaluated)
    assert result.best_map > untrained + 0.2  # a wide margin, not a tuned number
    assert result.history[-1]["triplet_loss"] < result.history[0]["triplet_loss"]


def test_the_checkpoint_serves_with_a_stable_fingerprint(trained, tmp_path):
    result, _, out = trained
    manifest = read_manifest(result.checkpoint)
    assert manifest is not None
    assert manifest.training is not None
    assert manifest.training["evaluation"]["mAP"] == pytest.approx(result.best_map)
    assert manifest.training["config_hash"] == json.loads((out / "config.json").read_text())["config_hash"]
    assert not any(key.startswith("head.classifier") for key in load_file(result.checkpoint))
    first, again = load_checkpoint(result.checkpoint), load_checkpoint(result.checkpoint)
    assert first.fingerprint == again.fingerprint == manifest.fingerprint
    assert (first.preprocess.height, first.preprocess.width) == (64, 32)
    with TestClient(create_app(settings_for(tmp_path, weights=str(out), max_batch_size=2))) as client:
        wait_ready(client)
        assert client.get("/info").json()["model"] == manifest.fingerprint


def test_resume_equals_uninterrupted(labelled_market, quick_recipe, tmp_path):
    config = quick_recipe.replace(epochs=3, warmup_epochs=1, milestones=(2,))
    records = list(labelled_market.train)
    whole = train(config, records, tmp_path / "whole")
    train(config, records, tmp_path / "parts", stop_after=1)
    with pytest.raises(ConfigError, match="--resume"):
        train(config, records, tmp_path / "parts")
    resumed = train(config, records, tmp_path / "parts", resume=True)
    assert [e["epoch"] for e in resumed.history] == [1, 2, 3]
    for key, value in load_file(whole.checkpoint).items():
        torch.testing.assert_close(load_file(resumed.checkpoint)[key], value, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="other training settings"):
        train(config.replace(lr=0.1), records, tmp_path / "parts", resume=True)


def test_learning_rate_warms_up_then_steps(quick_recipe):
    config = quick_recipe.replace(
        epochs=10, warmup_epochs=2, warmup_factor=0.1, milestones=(5, 8), gamma=0.1, lr=1.0
    )
    rates = [learning_rate(config, epoch) for epoch in range(10)]
    assert rates == pytest.approx([0.1, 0.55, 1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])
    cosine = [learning_rate(config.replace(schedule="cosine"), epoch) for epoch in range(10)]
    assert cosine[2] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(cosine[2:]))


def _flat_state(state):
    """Every learnt servable tensor as one vector (BN running statistics and the classifier left out)."""
    keys = sorted(k for k in state if "running" not in k and "num_batches" not in k and "classifier" not in k)
    return torch.cat([state[key].flatten().double() for key in keys])


def _flat(path):
    return _flat_state(load_file(path))


def test_two_cpu_processes_match_one_on_the_same_global_batch(labelled_market, quick_recipe, tmp_path):
    """DDP (gloo) shards each P×K batch over 2 processes and mines triplets over the whole batch. BatchNorm
    statistics stay per process on CPU (SyncBatchNorm needs a GPU), so the runs agree closely, not exactly:
    far closer than the same recipe with another seed."""
    config = quick_recipe.replace(epochs=1, warmup_epochs=0)
    records = list(labelled_market.train)
    initial = _build_model(config, num_classes=12)[0]
    single = train(config, records, tmp_path / "single")
    other_seed = train(config.replace(seed=1), records, tmp_path / "seed1")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "reid", "train"]
    flags = ["--preset", "small", "--height", "64", "--width", "32", "--batch-size", "16", "--instances", "4"]
    flags += ["--epochs", "1", "--warmup-epochs", "0", "--milestones", "4", "--lr", "0.001", "--workers", "0"]
    subprocess.run(
        [*command, str(labelled_market.root), "--out", str(tmp_path / "ddp"), *flags, "--eval-every", "0"],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    start = _flat_state(initial.state_dict())
    moved = (_flat(single.checkpoint) - start).norm()
    ddp_gap = (_flat(tmp_path / "ddp" / "model.safetensors") - _flat(single.checkpoint)).norm()
    seed_gap = (_flat(other_seed.checkpoint) - _flat(single.checkpoint)).norm()
    assert moved > 0
    assert ddp_gap < 0.5 * seed_gap, (float(ddp_gap), float(seed_gap), float(moved))
