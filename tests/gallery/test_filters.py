"""Filters: the vocabulary, its checks, and grouping a batch's queries by filter."""

from typing import Any

import pytest

from reid.errors import ConfigError
from reid.gallery import Filters
from reid.gallery.filters import MetadataMatch, group_queries, metadata_condition, prefix_range


def test_id_collections_become_frozensets_so_filters_hash():
    f = Filters(cameras_in=[2, 1, 2], person_ids=range(3))
    assert f.cameras_in == frozenset({1, 2})
    assert f.person_ids == frozenset({0, 1, 2})
    assert hash(f) == hash(Filters(cameras_in={1, 2}, person_ids={0, 1, 2}))


def test_emptiness_and_excluded_cameras():
    assert Filters().is_empty
    assert not Filters(exclude_camera=0).is_empty
    assert Filters(cameras_not_in=[1], exclude_camera=3).excluded_cameras == {1, 3}
    assert Filters().excluded_cameras == frozenset()


def test_an_inverted_time_range_is_refused():
    with pytest.raises(ConfigError, match="after time_to"):
        Filters(time_from=2.0, time_to=1.0)
    with pytest.raises(ConfigError, match="after inserted_to"):
        Filters(inserted_from=2.0, inserted_to=1.0)


def test_metadata_conditions_are_checked_hashable_and_plain():
    f = Filters(metadata={"site": "a", "n": 3})
    assert isinstance(f.metadata, MetadataMatch)
    assert hash(f) == hash(Filters(metadata={"n": 3, "site": "a"}))
    assert f.as_dict() == {"metadata": {"n": 3, "site": "a"}}
    assert Filters(metadata={}).is_empty
    cases: list[tuple[Any, str]] = [
        ({"a b": 1}, "metadata filter keys"),
        ({"x": True}, "a finite number"),
        ({"x": float("nan")}, "finite"),
        ({"x": [1]}, "a finite number"),
        ({"x": 2**63}, "64-bit integer"),
    ]
    for bad, message in cases:
        with pytest.raises(ConfigError, match=message):
            Filters(metadata=bad)
    with pytest.raises(ConfigError, match="key_prefix must not be empty"):
        Filters(key_prefix="")


def test_as_dict_names_only_the_conditions_set():
    f = Filters(cameras_in=[3, 1], key_prefix="cam1/", inserted_to=5.0)
    assert f.as_dict() == {"cameras_in": [1, 3], "key_prefix": "cam1/", "inserted_to": 5.0}


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("site=a", ("site", "a")),
        ("n=3", ("n", 3)),
        ("x=2.5", ("x", 2.5)),
        ('n="3"', ("n", "3")),
        ("empty=", ("empty", "")),
    ],
)
def test_metadata_conditions_from_the_command_line(text, pair):
    assert metadata_condition(text) == pair


def test_a_metadata_condition_needs_an_equals_sign():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        metadata_condition("site")


@pytest.mark.parametrize("prefix", ["cam1/", "a", "é", "z\uffff", "a\U0010ffff", "\U0010ffff", "x\ud7ff"])
def test_prefix_range_holds_exactly_the_strings_with_the_prefix(prefix):
    low, high = prefix_range(prefix)
    inside = [prefix, prefix + "\x00", prefix + "zz", prefix + "\U0010ffff"]
    outside = [prefix[:-1], chr(ord(prefix[0]) + 1) if ord(prefix[0]) < 0x10FFFF else "", "\x00"]

    def within(text):
        return low <= text and (high is None or text < high)

    assert all(within(text) for text in inside)
    assert not any(within(text) for text in outside if not text.startswith(prefix))
    if high is not None:  # a real character: a store can hold and compare it
        high.encode()


def test_queries_are_grouped_by_filter():
    a, b = Filters(exclude_camera=1), Filters(exclude_camera=2)
    assert group_queries(None, 3) == {None: [0, 1, 2]}
    assert group_queries(a, 2) == {a: [0, 1]}
    assert group_queries([a, b, Filters(exclude_camera=1)], 3) == {a: [0, 2], b: [1]}
    with pytest.raises(ConfigError, match="one per query"):
        group_queries([a, b], 3)


def test_every_field_declares_its_help_and_value_type():
    from dataclasses import fields

    from reid.gallery.filters import metadata_condition

    for spec in fields(Filters):
        assert spec.metadata["help"]
        assert spec.metadata["value"] in (int, float, str, metadata_condition)
