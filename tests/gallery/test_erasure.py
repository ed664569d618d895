"""Erasure by filter, insertion times, retention and the audit log, on every backend."""

import json
from typing import Any

import pytest

from reid.errors import ConfigError
from reid.gallery import Actor, Filters, GalleryItem, RetentionPolicy, StoreOptions
from reid.gallery.retention import DAY
from tests.gallery.conftest import DIM, START, open_on
from tests.gallery.helpers import make_items, passes, unit_vectors

ERASE_CASES = [
    Filters(person_ids={2, 3}),
    Filters(cameras_in={1}),
    Filters(key_prefix="k1"),
    Filters(time_from=100.0, time_to=200.0),
    Filters(metadata={"i": 5}),
    Filters(cameras_not_in={0, 1}, person_ids=range(5)),
]


def _audit_lines(store):
    return [json.loads(line) for line in store.audit_path.read_text().splitlines()]


def _remaining_keys(store):
    return {record.key for record in store.get(store.storage.all_ids().tolist())}


@pytest.mark.parametrize("filters", ERASE_CASES, ids=lambda f: ",".join(f.as_dict()))
def test_erase_removes_exactly_what_the_filter_matches(filled, filters):
    store, vectors, _ = filled
    items = make_items(vectors)
    doomed = {item.key for item in items if passes(item, filters)}
    assert doomed, "each case should match something"
    dry = store.erase(filters, dry_run=True)
    assert (dry.matched, dry.erased, dry.dry_run) == (len(doomed), 0, True)
    assert store.count() == 40
    done = store.erase(filters)
    assert (done.matched, done.erased) == (len(doomed), len(doomed))
    assert _remaining_keys(store) == {item.key for item in items} - doomed
    hits = store.search(vectors, k=40)
    assert not {hit.key for row in hits for hit in row} & doomed
    assert store.erase(filters).matched == 0  # nothing left to match


def test_an_empty_filter_erases_nothing(filled):
    store, _, _ = filled
    with pytest.raises(ConfigError, match="needs a filter"):
        store.erase(Filters())
    assert store.count() == 40


def test_metadata_equality_across_types(store):
    values: list[dict[str, Any]] = [{"flag": True}, {"flag": 1}, {"flag": 0}, {"flag": "1"}, {"n": 2.5}, {}]
    vectors = unit_vectors(len(values), DIM)
    pairs = enumerate(zip(vectors, values, strict=True))
    store.add([GalleryItem(vector=v, key=f"m{i}", metadata=m) for i, (v, m) in pairs])
    assert store.erase(Filters(metadata={"flag": 1}), dry_run=True).matched == 2  # true and 1
    assert store.erase(Filters(metadata={"flag": "1"}), dry_run=True).matched == 1
    assert store.erase(Filters(metadata={"n": 2.5}), dry_run=True).matched == 1


def test_every_item_records_when_it_was_stored(store, clock):
    vectors = unit_vectors(3, DIM)
    (first,) = store.add([GalleryItem(vector=vectors[0], key="a")])
    clock.advance(100)
    second, third = store.upsert(
        [GalleryItem(vector=vectors[1], key="b"), GalleryItem(vector=vectors[2], key="a")]
    )
    records = {r.key: r for r in store.get([second, third])}
    assert records["b"].inserted_at == records["a"].inserted_at == START + 100  # a replaced key is new
    (hit,) = store.search(vectors[1:2], k=1)[0]
    assert hit.inserted_at == START + 100
    late = Filters(inserted_from=START + 50)
    assert {h.key for h in store.search(vectors[:1], k=5, filters=late)[0]} == {"a", "b"}
    assert store.erase(Filters(inserted_to=START + 50), dry_run=True).matched == 0  # "a" was replaced
    with pytest.raises(Exception, match="no gallery item"):
        store.get([first])
    clock.advance(100)
    store.add([GalleryItem(vector=vectors[0], key="c")])
    erased = store.erase(Filters(inserted_from=START + 50, inserted_to=START + 150))
    assert (erased.matched, erased.erased) == (2, 2)
    assert _remaining_keys(store) == {"c"}


def test_retention_by_insertion_time(store, clock):
    vectors = unit_vectors(4, DIM)
    store.add([GalleryItem(vector=vectors[0], key="old")])
    clock.advance(2 * DAY)
    store.add([GalleryItem(vector=vectors[1], key="new")])
    store.set_retention(RetentionPolicy(days=1.5))
    assert store.retention == RetentionPolicy(days=1.5)
    assert store.stats().retention == [{"days": 1.5, "by": "inserted"}]
    dry = store.sweep(dry_run=True)
    assert (dry.matched, dry.erased) == (1, 0)
    assert store.sweep().erased == 1
    assert _remaining_keys(store) == {"new"}
    clock.advance(DAY)  # "new" is now 1 day old: kept
    assert store.sweep().erased == 0
    store.set_retention(None)
    assert store.retention is None
    assert store.sweep().matched == 0


def test_retention_by_capture_time_falls_back_to_insertion_time(store, clock):
    vectors = unit_vectors(4, DIM)
    now = clock.now
    store.add(
        [
            GalleryItem(vector=vectors[0], key="taken-long-ago", timestamp=now - 10 * DAY),
            GalleryItem(vector=vectors[1], key="taken-recently", timestamp=now - 0.5 * DAY),
            GalleryItem(vector=vectors[2], key="undated"),
        ]
    )
    store.set_retention(RetentionPolicy(days=1, by="captured"))
    assert store.sweep().erased == 1
    assert _remaining_keys(store) == {"taken-recently", "undated"}
    clock.advance(1.5 * DAY)  # the undated item is now 1.5 days in the gallery; the other 2 days old
    assert store.sweep().erased == 2
    assert store.count() == 0


def test_retention_applies_when_a_gallery_opens(backend, location, clock):
    options = StoreOptions(clock=clock)
    with open_on(backend, location, dim=DIM, store=options) as store:
        store.add(make_items(unit_vectors(5, DIM)))
        store.set_retention(RetentionPolicy(days=1))
    clock.advance(2 * DAY)
    with open_on(backend, location, store=options) as store:
        assert store.count() == 0
        (line,) = [line for line in _audit_lines(store) if line["action"] == "retention"]
        assert (line["erased"], line["via"]) == (5, "gallery open")


def test_a_policy_given_at_open_applies_beside_the_kept_one(backend, location, clock):
    with open_on(backend, location, dim=DIM, store=StoreOptions(clock=clock)) as store:
        store.add(make_items(unit_vectors(3, DIM)))
        store.set_retention(RetentionPolicy(days=30))
    clock.advance(2 * DAY)
    service = StoreOptions(clock=clock, retention=RetentionPolicy(days=1))
    with open_on(backend, location, store=service) as store:  # the shorter limit wins in effect
        assert store.count() == 0
        assert store.stats().retention == [{"days": 30, "by": "inserted"}, {"days": 1, "by": "inserted"}]


def test_the_audit_log_has_one_line_per_action(filled, clock, tmp_path):
    store, vectors, ids = filled
    admin = Actor(via="POST /gallery/erase", key="ops")
    store.upsert([GalleryItem(vector=vectors[0], key="k0")], actor=Actor(via="POST /gallery", key="indexer"))
    store.delete([int(ids[1])])
    store.erase(Filters(person_ids={3}), dry_run=True, actor=admin)
    store.erase(Filters(person_ids={3}), actor=admin)
    store.set_retention(RetentionPolicy(days=7))
    store.sweep()
    store.search(vectors[:2], k=3)  # searches are not logged unless asked
    store.export(tmp_path / "out")
    lines = _audit_lines(store)
    assert [line["action"] for line in lines] == [
        "add",
        "upsert",
        "delete",
        "erase",
        "erase",
        "retention_policy",
        "retention",
        "export",
    ]
    assert all(line["time"].startswith("2023-11-14T22:13:20") for line in lines)  # START, in UTC
    assert lines[0]["count"] == 40
    assert (lines[1]["count"], lines[1]["replaced"], lines[1]["key"]) == (1, 1, "indexer")
    assert (lines[2]["count"], lines[2]["ids"]) == (1, [int(ids[1])])
    dry, done = lines[3], lines[4]
    assert (dry["filter"], dry["matched"], dry["erased"], dry["dry_run"]) == ({"person_ids": [3]}, 4, 0, True)
    assert (done["erased"], done["key"], done["via"]) == (4, "ops", "POST /gallery/erase")
    assert lines[5]["policy"] == {"days": 7, "by": "inserted"}
    assert lines[6]["policies"][0]["cutoff"] == START - 7 * DAY
    assert lines[7]["count"] == 35
    assert all(line["gallery"] == store.storage.where for line in lines)
    text = store.audit_path.read_text()
    assert "/crops/" not in text  # no item content: sources and keys stay out
    assert "k0" not in text


def test_searches_are_logged_when_asked(backend, location, clock):
    options = StoreOptions(clock=clock, audit_searches=True)
    with open_on(backend, location, dim=DIM, store=options) as store:
        vectors = unit_vectors(6, DIM)
        store.add(make_items(vectors))
        store.search(
            vectors[:2], k=3, filters=Filters(cameras_in={1}), actor=Actor(via="POST /search", key="app")
        )
        line = _audit_lines(store)[-1]
    assert line["action"] == "search"
    assert (line["queries"], line["k"], line["filter"], line["key"]) == (2, 3, {"cameras_in": [1]}, "app")
    assert line["hits"] == 4  # two items of camera 1, for each query


def test_the_audit_log_goes_where_asked(backend, location, tmp_path):
    path = tmp_path / "logs" / "audit.jsonl"
    with open_on(backend, location, dim=DIM, store=StoreOptions(audit_log=path)) as store:
        store.add(make_items(unit_vectors(2, DIM)))
    assert json.loads(path.read_text())["action"] == "add"
