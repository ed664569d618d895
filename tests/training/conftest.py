"""A labelled synthetic Market set and a small, fast training recipe shared by the training tests."""

import pytest

from reid.datasets import make_synthetic_market
from reid.training import TrainConfig, load_config


@pytest.fixture(scope="session")
def labelled_market(tmp_path_factory):
    """12 training identities × 3 cameras × 3 crops, and an 8-identity query/gallery split, at 64×32."""
    return make_synthetic_market(
        tmp_path_factory.mktemp("labelled"),
        num_ids=8,
        num_train_ids=12,
        num_cameras=3,
        images_per_id_per_camera=3,
        height=64,
        width=32,
    )


@pytest.fixture(scope="session")
def quick() -> TrainConfig:
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
