"""Fixtures shared across the test tree."""

import pytest

from reid.datasets import make_synthetic_market


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
def tiny_checkpoint(tmp_path_factory):
    """The calibrated test model (resnet18, 64×32) as a checkpoint with its manifest."""
    from tests.jobs.helpers import write_test_checkpoint

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
