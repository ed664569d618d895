"""Filter flags derived from reid.gallery.Filters."""

import argparse
from dataclasses import fields

import pytest

from reid.cli.filters import OLD_FLAGS, add_filter_arguments, filters_from_args
from reid.gallery import Filters


def _parser():
    parser = argparse.ArgumentParser()
    add_filter_arguments(parser)
    return parser


def test_one_flag_per_filter_field_named_after_it():
    args = _parser().parse_args(
        [
            "--cameras-in",
            "1",
            "2",
            "--cameras-not-in",
            "3",
            "--person-ids",
            "4",
            "--exclude-camera",
            "5",
            "--time-from",
            "1.5",
            "--time-to",
            "9",
        ]
    )
    assert filters_from_args(args) == Filters(
        cameras_in={1, 2}, cameras_not_in={3}, person_ids={4}, exclude_camera=5, time_from=1.5, time_to=9.0
    )
    assert filters_from_args(_parser().parse_args([])).is_empty
    help_text = _parser().format_help()
    assert all("--" + spec.name.replace("_", "-") in help_text for spec in fields(Filters))


def test_old_flags_still_work_unlisted():
    args = _parser().parse_args(["--camera-in", "1", "--camera-not-in", "2", "--person", "3"])
    assert filters_from_args(args) == Filters(cameras_in={1}, cameras_not_in={2}, person_ids={3})
    assert not set(OLD_FLAGS.values()) & set(_parser().format_help().split())


def test_key_insertion_and_metadata_flags(capsys):
    args = _parser().parse_args(
        [
            "--key-prefix",
            "cam1/",
            "--inserted-from",
            "10",
            "--inserted-to",
            "20.5",
            "--metadata",
            "i=3",
            "site=a",
        ]
    )
    assert filters_from_args(args) == Filters(
        key_prefix="cam1/", inserted_from=10.0, inserted_to=20.5, metadata={"i": 3, "site": "a"}
    )
    usage = " ".join(_parser().format_usage().split())
    for shown in ("--key-prefix PREFIX", "--inserted-from UNIX_S", "--metadata KEY=VALUE", "--person-ids ID"):
        assert shown in usage
    with pytest.raises(SystemExit):
        _parser().parse_args(["--metadata", "site"])
    assert "argument --metadata: a metadata condition is KEY=VALUE, got 'site'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["--person-ids", "x"])
    assert "invalid int value: 'x'" in capsys.readouterr().err
