import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from reid.datasets.image_lists import discover_source, read_image_list, scan_folder
from reid.errors import ConfigError


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def test_csv_fields_aliases_metadata_and_relative_paths(tmp_path):
    manifest = _write(
        tmp_path / "lists" / "people.csv",
        "path,key,person,camera_id,timestamp,site,note\n"
        "img/a.jpg,,7,2,1700000000.5,north,\n"
        '../other/b.png,custom-b,,,2024-01-02T03:04:05,south,"hello, world"\n',
        encoding="utf-8-sig",  # a spreadsheet's byte-order mark must not break the 'path' header
    )
    first, second = read_image_list(manifest)
    assert first.path == tmp_path / "lists" / "img" / "a.jpg"
    assert first.key == "img/a.jpg"
    assert (first.person_id, first.camera_id, first.timestamp) == (7, 2, 1700000000.5)
    assert first.metadata == {"site": "north"}  # the empty 'note' cell is dropped
    assert second.path == tmp_path / "other" / "b.png"
    assert second.key == "custom-b"
    assert (second.person_id, second.camera_id) == (None, None)
    assert second.timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    assert second.metadata == {"site": "south", "note": "hello, world"}


def test_csv_default_key_outside_manifest_folder_is_absolute(tmp_path):
    manifest = _write(tmp_path / "m" / "list.csv", "path\n../x.jpg\n/abs/y.jpg\n")
    assert [r.key for r in read_image_list(manifest)] == [(tmp_path / "x.jpg").as_posix(), "/abs/y.jpg"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("path,person\na.jpg,1\nb.jpg,bob\n", r"line 3: person_id must be an integer, got 'bob'"),
        ("path,camera\na.jpg,1\nb.jpg,2\nc.jpg,x\n", r"line 4: camera_id must be an integer"),
        ("path,timestamp\na.jpg,yesterday\n", r"line 2: timestamp must be POSIX seconds or ISO 8601"),
        ("path,person\na.jpg,1,extra\n", r"line 2: more cells than header columns"),
        ("path,person\n,1\n", r"line 2: missing path"),
        ("path,person,person_id\na.jpg,1,1\n", r"line 2: both person_id and its alias"),
        ("path,key\na.jpg,k\nb.jpg,j\nc.jpg,k\n", r"line 4: duplicate key 'k' \(first on line 2\)"),
        ("path\na.jpg\n./a.jpg\n", r"line 3: duplicate key 'a.jpg'"),
        ("file,person\na.jpg,1\n", r"line 1: the header row must have a 'path' column"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, body, message):
    manifest = _write(tmp_path / "bad.csv", body)
    with pytest.raises(ConfigError, match=message) as info:
        read_image_list(manifest)
    assert str(info.value).startswith(str(manifest))


def test_jsonl_fields_metadata_and_blank_lines(tmp_path):
    rows = [
        {
            "path": "a.jpg",
            "person_id": 3,
            "camera": "4",
            "timestamp": 12,
            "metadata": {"zone": "A"},
            "shift": 2,
        },
        {"path": "sub/b.jpg", "key": "bee", "metadata": None},
    ]
    manifest = _write(tmp_path / "m.jsonl", json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    first, second = read_image_list(manifest)
    assert (first.key, first.person_id, first.camera_id, first.timestamp) == ("a.jpg", 3, 4, 12.0)
    assert first.metadata == {"zone": "A", "shift": 2}
    assert (second.path, second.key, second.metadata) == (tmp_path / "sub" / "b.jpg", "bee", {})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: invalid JSON"),
        ("[1, 2]", "line 2: each line must be a JSON object"),
        ('{"path": "b.jpg", "metadata": [1]}', "line 2: metadata must be a JSON object"),
        ('{"path": "b.jpg", "zone": 1, "metadata": {"zone": 2}}', "line 2: 'zone' given both"),
        ('{"path": "b.jpg", "person_id": true}', "line 2: person_id must be an integer"),
        ('{"path": "b.jpg", "key": 5}', "line 2: key must be a string"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    manifest = _write(tmp_path / "m.ndjson", '{"path": "a.jpg"}\n' + line + "\n")
    with pytest.raises(ConfigError, match=message):
        read_image_list(manifest)


def test_manifest_suffix_must_be_known(tmp_path):
    with pytest.raises(ConfigError, match=r"\.csv, \.jsonl or \.ndjson"):
        read_image_list(_write(tmp_path / "list.txt", "path\na.jpg\n"))


def test_scan_folder_recursive_sorted_and_labels_market_names(tmp_path):
    for name in [
        "b/0002_c3s1_000100_01.jpg",
        "a/photo.PNG",
        "a/z/clip.webp",
        "a/notes.txt",
        ".cache/hidden.jpg",
        "a/.hidden.jpg",
        "0001_c2_f0046182.jpeg",
    ]:
        _write(tmp_path / name, "")
    records = scan_folder(tmp_path)
    assert [r.key for r in records] == [
        "0001_c2_f0046182.jpeg",
        "a/photo.PNG",
        "a/z/clip.webp",
        "b/0002_c3s1_000100_01.jpg",
    ]
    assert [(r.person_id, r.camera_id) for r in records] == [(1, 2), (None, None), (None, None), (2, 3)]
    assert records[2].path == tmp_path / "a" / "z" / "clip.webp"


def test_discover_source_dispatches(tmp_path):
    _write(tmp_path / "pics" / "x.gif", "")
    _write(tmp_path / "list.jsonl", '{"path": "pics/x.gif", "person": 9}\n')
    assert [(r.key, r.person_id) for r in discover_source(tmp_path / "pics")] == [("x.gif", None)]
    assert [(r.key, r.person_id) for r in discover_source(tmp_path / "list.jsonl")] == [("pics/x.gif", 9)]


def test_discover_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        discover_source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images found"):
        discover_source(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no images found"):
        discover_source(_write(tmp_path / "empty.csv", "path\n"))
