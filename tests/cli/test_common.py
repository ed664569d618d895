import argparse
import dataclasses

import pytest

from reid.cli.common import add_engine_arguments, engine_options_from_args
from reid.engine import EngineOptions
from reid.errors import ConfigError


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    return parser.parse_args(list(argv))


def test_every_engine_option_has_a_flag_with_the_declared_default():
    assert engine_options_from_args(_parse()) == EngineOptions()
    flags = _parse().engine_flags
    assert flags == [option.name for option in dataclasses.fields(EngineOptions)]


def test_flags_override_only_what_they_name():
    args = _parse("--batch-size", "8", "--no-fold-bn", "--flip", "--dtype", "bf16", "--runtime", "openvino")
    assert engine_options_from_args(args) == EngineOptions(
        max_batch_size=8, fold_bn=False, flip=True, dtype="bf16", runtime="openvino"
    )
    assert engine_options_from_args(_parse("--max-batch-size", "3", "--no-channels-last")) == EngineOptions(
        max_batch_size=3, channels_last=False
    )


def test_bad_values_are_refused():
    with pytest.raises(SystemExit):
        _parse("--dtype", "int4")
    with pytest.raises(ConfigError, match="max_batch_size"):
        engine_options_from_args(_parse("--batch-size", "0"))
