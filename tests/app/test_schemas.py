"""The API models follow the library's declarations: the item schema and the filter vocabulary."""

from dataclasses import fields

from app.schemas import RENAMED_FILTERS, GalleryItemIn, GalleryItemOut, ItemFields, SearchHit, SearchOptions
from reid.gallery import Filters
from reid.gallery.items import FIELD_NAMES


def test_item_models_carry_the_item_schema():
    assert tuple(ItemFields.model_fields) == FIELD_NAMES
    assert tuple(GalleryItemIn.model_fields) == (*FIELD_NAMES, "image")
    assert tuple(SearchHit.model_fields) == ("id", "score", "match", *FIELD_NAMES)
    assert tuple(GalleryItemOut.model_fields) == ("id", *FIELD_NAMES, "vector")


def test_search_options_speak_the_filter_vocabulary():
    names = [f.name for f in fields(Filters)]
    assert set(names) <= set(SearchOptions.model_fields)
    assert set(RENAMED_FILTERS.values()) <= set(names)
    for name in names:
        assert SearchOptions.model_fields[name].description == next(
            f.metadata["help"] for f in fields(Filters) if f.name == name
        )


def test_old_filter_names_map_to_the_new_ones():
    old = SearchOptions(cameras=[1], exclude_cameras=[2], query_camera=3, exclude_same_camera=True)
    new = SearchOptions(cameras_in=[1], cameras_not_in=[2], exclude_camera=3)
    assert old.filters() == new.filters() == Filters(cameras_in={1}, cameras_not_in={2}, exclude_camera=3)
