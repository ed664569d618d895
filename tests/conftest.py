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
