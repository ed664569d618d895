import json

import pytest

from reid.errors import ConfigError
from reid.training import PRESETS, TrainConfig, load_config


def test_preset_then_file_then_flags(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"preset": "small", "epochs": 12, "lr": 0.01, "milestones": [6, 9]}))
    config = load_config(None, path, {"lr": 0.02})
    assert (config.backbone, config.height, config.width) == ("resnet18", 128, 64)  # from the preset
    assert (config.epochs, config.milestones, config.lr) == (12, (6, 9), 0.02)  # file, then the flag
    assert load_config().backbone == PRESETS["bot"].backbone == "se_resnet50_ibn_a"


def test_the_hash_ignores_speed_only_settings():
    base = TrainConfig()
    assert base.replace(workers=0, eval_every=1, device="cpu").digest() == base.digest()
    assert base.replace(lr=1e-3).digest() != base.digest()
    assert TrainConfig.from_dict(base.to_dict()) == base


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 30, "instances": 4}, "multiple of instances"),
        ({"batch_size": 4, "instances": 4}, "at least 2 identities"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"erasing_prob": 2}, "probabilities"),
        ({"bogus": 1}, "unknown training setting"),
    ],
)
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({**TrainConfig().to_dict(), **changes})


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"\.json or \.toml"):
        load_config(path=tmp_path / "x.yaml")
    bad = tmp_path / "x.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not a valid config file"):
        load_config(path=bad)
    with pytest.raises(ConfigError, match="unknown training preset"):
        load_config("huge")
