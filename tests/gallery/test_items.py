"""The one item schema: its declaration, the value types derived from it, field validation."""

from dataclasses import fields

import numpy as np
import pytest

from reid.errors import GalleryError
from reid.gallery import GalleryItem, GalleryRecord, Hit
from reid.gallery.items import (
    FIELD_NAMES,
    INPUT_FIELDS,
    INSERTED_FIELD,
    ITEM_FIELDS,
    KEY_FIELD,
    ItemFields,
    StoredFields,
    check_text_lengths,
    fields_of,
    item_values,
)

INPUT_NAMES = {spec.name for spec in INPUT_FIELDS}


def test_the_schema_is_the_declaration():
    assert tuple(f.name for f in fields(StoredFields)) == FIELD_NAMES
    assert tuple(f.name for f in fields(ItemFields)) == tuple(spec.name for spec in INPUT_FIELDS)
    assert FIELD_NAMES[:6] == ("key", "person_id", "camera_id", "source", "timestamp", "metadata")
    assert KEY_FIELD == "key"
    assert [spec.unique for spec in ITEM_FIELDS].count(True) == 1
    assert all(spec.description for spec in ITEM_FIELDS)
    assert [spec.name for spec in ITEM_FIELDS if spec.managed] == [INSERTED_FIELD]


@pytest.mark.parametrize(
    ("value_type", "names"),
    [(GalleryItem, {*INPUT_NAMES, "vector"}), (GalleryRecord, {*FIELD_NAMES, "id", "vector"})],
)
def test_value_types_carry_their_fields(value_type, names):
    # Callers give the input fields; what the gallery returns carries the managed ones too.
    assert {f.name for f in fields(value_type)} == names


def test_hit_as_dict_puts_id_and_score_first():
    hit = Hit(id=3, score=0.5, key="k", metadata={"a": 1})
    assert list(hit.as_dict()) == ["id", "score", *FIELD_NAMES]
    assert hit.as_dict()["metadata"] == {"a": 1}
    assert {hit} == {Hit(id=3, score=0.5, key="k", metadata={"a": 1})}  # hashable despite the dict


def test_item_values_are_plain_and_complete():
    person: int = np.int64(4)  # type: ignore[assignment]  # numpy scalars come from arrays
    item = GalleryItem(vector=np.zeros(2), key="k", person_id=person, timestamp=5, metadata={"b": [1]})
    values = item_values(item, inserted_at=7)
    assert values == {
        **dict.fromkeys(FIELD_NAMES),
        "key": "k",
        "person_id": 4,
        "timestamp": 5.0,
        "metadata": {"b": [1]},
        INSERTED_FIELD: 7.0,
    }
    assert type(values["person_id"]) is int
    assert type(values["timestamp"]) is float


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (GalleryItem(vector=np.zeros(8), key="a", metadata={"x": object()}), "metadata is not JSON"),
        (GalleryItem(vector=np.zeros(8), key="a", person_id="seven"), "person_id must be int"),  # type: ignore[arg-type]
        (GalleryItem(vector=np.zeros(8), key="a", timestamp=float("nan")), "timestamp must be finite"),
        (GalleryItem(vector=np.zeros(8), key=5), "key must be a string"),  # type: ignore[arg-type]
        (GalleryItem(vector=np.zeros(8), key="a", metadata={"x": float("inf")}), "metadata is not JSON"),
    ],
)
def test_bad_field_values_are_refused_naming_the_field(item, message):
    with pytest.raises(GalleryError, match=message):
        item_values(item, inserted_at=0)


def test_text_limits_count_utf8_bytes():
    values = item_values(GalleryItem(vector=np.zeros(2), key="é" * 3), inserted_at=0)
    check_text_lengths(values, {"key": 6}, "test")
    with pytest.raises(GalleryError, match="key is longer than test's 5 bytes"):
        check_text_lengths(values, {"key": 5}, "test")


def test_fields_of_takes_the_fields_a_source_has():
    class Record:
        key = "k"
        camera_id = 2
        path = "/x.jpg"

    assert fields_of(Record()) == {"key": "k", "camera_id": 2}
    stored = GalleryRecord(id=1, vector=np.zeros(2), key="k", inserted_at=5.0)
    assert INSERTED_FIELD not in fields_of(stored)  # a managed field never flows into a new item
