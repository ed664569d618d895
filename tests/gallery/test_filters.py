"""Filters: the vocabulary, its checks, and grouping a batch's queries by filter."""

import pytest

from reid.errors import ConfigError
from reid.gallery import Filters
from reid.gallery.filters import group_queries


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


def test_queries_are_grouped_by_filter():
    a, b = Filters(exclude_camera=1), Filters(exclude_camera=2)
    assert group_queries(None, 3) == {None: [0, 1, 2]}
    assert group_queries(a, 2) == {a: [0, 1]}
    assert group_queries([a, b, Filters(exclude_camera=1)], 3) == {a: [0, 2], b: [1]}
    with pytest.raises(ConfigError, match="one per query"):
        group_queries([a, b], 3)


def test_every_field_declares_its_help_and_value_type():
    from dataclasses import fields

    for spec in fields(Filters):
        assert spec.metadata["help"]
        assert spec.metadata["value"] in (int, float)
