"""Fixtures shared across the test tree: data sets, and the test models every suite shares (built once per
run; the builders live in :mod:`tests.helpers`)."""

import pytest

from reid.datasets import make_synthetic_market
from reid.training import TrainConfig, TrainResult, load_config, train
from tests.helpers import write_test_checkpoint


@pytest.fixture(scope="session")
def market_dir(tmp_path_factory):
    """A small synthetic Market-1501 folder: 4 query and 6 gallery images (1 distractor, 1 junk)."""
    root = tmp_path_factory.mktemp("market")
    make_synthetic_market(
        root,
        num_ids=2,
        num_train_ids=0,
        num_cameras=2,
        images_per_id_per_camera=1,
        num_distractors=1,
        num_junk=1,
    )
    return root


@pytest.fixture(scope="session")
def labelled_market(tmp_path_factory):
    """A labelled synthetic Market set at 64×32: 12 training identities × 3 cameras × 3 crops, and 8 test
    identities with 3 query and 3 gallery crops per camera (each camera's crops of a person: one track)."""
    return make_synthetic_market(
        tmp_path_factory.mktemp("labelled"),
        num_ids=8,
        num_train_ids=12,
        num_cameras=3,
        images_per_id_per_camera=3,
        queries_per_camera=3,
        height=64,
        width=32,
    )


@pytest.fixture(scope="session")
def quick_recipe() -> TrainConfig:
    """resnet18 at 64×32, batches of 4 identities × 4 crops: seconds per epoch on 2 cores."""
    return load_config(
        "small",
        overrides={
            "height": 64,
            "width": 32,
            "batch_size": 16,
            "instances": 4,
            "epochs": 6,
            "warmup_epochs": 1,
            "milestones": (4,),
            "lr": 1e-3,
            "eval_every": 0,
            "workers": 0,
        },
    )


@pytest.fixture(scope="session")
def trained_small(labelled_market, quick_recipe, tmp_path_factory) -> TrainResult:
    """A small model trained once per test run (6 epochs, evaluated every 3): good, not perfect. Tests that
    judge embeddings (precision, track aggregation, thresholds) use it, because random weights exaggerate
    rounding errors and make every crop look alike."""
    out = tmp_path_factory.mktemp("trained_small")
    return train(
        quick_recipe.replace(eval_every=3), list(labelled_market.train), out, evaluation=labelled_market
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The calibrated test model (resnet18, 64×32) as a checkpoint with its manifest."""
    return write_test_checkpoint(tmp_path_factory.mktemp("weights"))


def _export(tiny_checkpoint, fmt, dtype, folder):
    from reid.export import ExportOptions, export_checkpoint
    from reid.runtimes import BatchProfile

    options = ExportOptions(format=fmt, dtype=dtype, batch=BatchProfile(1, 8, 16), num_samples=8)
    return export_checkpoint(tiny_checkpoint, options, folder).path


@pytest.fixture(scope="session")
def onnx_artifact(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported to ONNX (fp32), in a folder of its own; exported once per run."""
    pytest.importorskip("onnxruntime")
    return _export(tiny_checkpoint, "onnx", "fp32", tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="session")
def openvino_artifact(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported to an OpenVINO IR (fp32), in a folder of its own."""
    pytest.importorskip("openvino")
    return _export(tiny_checkpoint, "openvino", "fp32", tmp_path_factory.mktemp("openvino"))
