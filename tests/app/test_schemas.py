"""The API models follow the library's declarations: the item schema and the filter vocabulary."""

from dataclasses import fields

import pytest

from app.schemas import (
    RENAMED_FILTERS,
    EraseRequest,
    FilterFields,
    GalleryItemIn,
    GalleryItemOut,
    ItemFields,
    SearchHit,
    SearchOptions,
)
from reid.gallery import Filters
from reid.gallery.items import FIELD_NAMES, INPUT_FIELDS

INPUT_NAMES = tuple(spec.name for spec in INPUT_FIELDS)


def test_item_models_carry_the_item_schema():
    # Callers give the input fields; what comes back carries the managed ones (inserted_at) too.
    assert tuple(ItemFields.model_fields) == INPUT_NAMES
    assert tuple(GalleryItemIn.model_fields) == (*INPUT_NAMES, "image")
    assert tuple(SearchHit.model_fields) == ("id", "score", "match", *FIELD_NAMES)
    assert tuple(GalleryItemOut.model_fields) == ("id", *FIELD_NAMES, "vector")


@pytest.mark.parametrize("model", [SearchOptions, EraseRequest])
def test_search_and_erasure_speak_the_filter_vocabulary(model):
    names = [f.name for f in fields(Filters)]
    assert tuple(FilterFields.model_fields) == tuple(names)
    assert set(names) <= set(model.model_fields)
    assert set(RENAMED_FILTERS.values()) <= set(names)
    for name in names:
        assert model.model_fields[name].description == next(
            f.metadata["help"] for f in fields(Filters) if f.name == name
        )


def test_the_new_filter_conditions_reach_the_library():
    body = EraseRequest(key_prefix="site-a/", inserted_to=5.0, metadata={"zone": "x", "n": 2}, dry_run=True)
    assert body.filters() == Filters(key_prefix="site-a/", inserted_to=5.0, metadata={"zone": "x", "n": 2})
    assert EraseRequest().filters() is None
    with pytest.raises(ValueError, match="string"):
        EraseRequest(metadata={"flag": True})  # no booleans: say 1 or 0
    with pytest.raises(ValueError, match="inserted_from"):
        EraseRequest(inserted_from=2.0, inserted_to=1.0)


def test_old_filter_names_map_to_the_new_ones():
    old = SearchOptions(cameras=[1], exclude_cameras=[2], query_camera=3, exclude_same_camera=True)
    new = SearchOptions(cameras_in=[1], cameras_not_in=[2], exclude_camera=3)
    assert old.filters() == new.filters() == Filters(cameras_in={1}, cameras_not_in={2}, exclude_camera=3)
