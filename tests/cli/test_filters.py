"""Filter flags derived from reid.gallery.Filters."""

import argparse
from dataclasses import fields

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
