from pathlib import Path

import numpy as np
import pytest

from reid.datasets.market import (
    MarketName,
    load_market,
    match_market_name,
    parse_market_name,
    scan_market_split,
)
from reid.datasets.records import ImageRecord, label_arrays
from reid.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("0002_c1s1_000451_03.jpg", MarketName(2, 1, "market1501", sequence=1, frame=451)),
        ("1500_c6s3_086542_02.jpg", MarketName(1500, 6, "market1501", sequence=3, frame=86542)),
        ("-1_c3s2_000151_01.jpg", MarketName(-1, 3, "market1501", sequence=2, frame=151)),
        ("0000_c5s1_128446_04.jpg", MarketName(0, 5, "market1501", sequence=1, frame=128446)),
        ("bounding_box_test/0001_c1s1_001051_00.jpg", MarketName(1, 1, "market1501", sequence=1, frame=1051)),
        ("0001_c2_f0046182.jpg", MarketName(1, 2, "dukemtmc", frame=46182)),
        ("7140_c8_f0160046.png", MarketName(7140, 8, "dukemtmc", frame=160046)),
        ("0000_045_12_0303morning_0006_2.jpg", MarketName(0, 12, "msmt17", frame=6)),
        ("0083_002_01_0113afternoon_1439_0.jpg", MarketName(83, 1, "msmt17", frame=1439)),
    ],
)
def test_parses_real_style_names(name, expected):
    assert parse_market_name(name) == expected
    assert match_market_name(Path(name)) == expected


def test_junk_flag():
    assert parse_market_name("-1_c1s1_000401_03.jpg").is_junk
    assert not parse_market_name("0000_c1s1_000401_03.jpg").is_junk


@pytest.mark.parametrize(
    "name",
    [
        "Thumbs.db",
        "photo.jpg",
        "0002_c1_000451_03.jpg",
        "abcd_c1s1_000451_03.jpg",
        "0002_c1s1_000451.jpg",
        "-2_c1_f1.jpg",
    ],
)
def test_rejects_other_names(name):
    assert match_market_name(name) is None
    with pytest.raises(ConfigError, match="not a Market-1501 style name"):
        parse_market_name(name)


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_scan_split_sorted_labelled_and_skips_non_images(tmp_path):
    split = tmp_path / "query"
    _touch(split, "0002_c2s1_000100_01.jpg", "-1_c1s1_000001_01.jpg", "0001_c1s1_000050_01.JPG", "Thumbs.db")
    records = scan_market_split(split)
    assert [r.key for r in records] == [
        "query/-1_c1s1_000001_01.jpg",
        "query/0001_c1s1_000050_01.JPG",
        "query/0002_c2s1_000100_01.jpg",
    ]
    assert [(r.person_id, r.camera_id) for r in records] == [(-1, 1), (1, 1), (2, 2)]
    assert records[0].is_junk
    assert records[1].path == split / "0001_c1s1_000050_01.JPG"


def test_scan_split_rejects_unlabelled_image(tmp_path):
    _touch(tmp_path / "query", "0001_c1s1_000050_01.jpg", "holiday.jpg")
    with pytest.raises(ConfigError, match=r"holiday\.jpg"):
        scan_market_split(tmp_path / "query")


def _market_tree(root: Path, *, train: bool) -> None:
    _touch(root / "query", "0001_c1s1_000010_01.jpg")
    _touch(
        root / "bounding_box_test",
        "0001_c2s1_000020_01.jpg",
        "-1_c1s1_000030_01.jpg",
        "0000_c3s1_000040_01.jpg",
    )
    if train:
        _touch(root / "bounding_box_train", "0005_c1s1_000050_01.jpg")


def test_load_market_reads_splits_and_keeps_junk_in_gallery(tmp_path):
    _market_tree(tmp_path, train=True)
    dataset = load_market(tmp_path)
    assert dataset.root == tmp_path
    assert [r.key for r in dataset.query] == ["query/0001_c1s1_000010_01.jpg"]
    assert [r.person_id for r in dataset.gallery] == [-1, 0, 1]
    assert [r.is_junk for r in dataset.gallery] == [True, False, False]
    assert [r.person_id for r in dataset.train] == [5]


def test_load_market_descends_into_single_archive_folder_and_train_is_optional(tmp_path):
    _market_tree(tmp_path / "Market-1501-v15.09.15", train=False)
    dataset = load_market(tmp_path)
    assert dataset.root == tmp_path / "Market-1501-v15.09.15"
    assert dataset.train == ()


def test_load_market_wrong_layout_names_expected_folders(tmp_path):
    _touch(tmp_path / "query", "0001_c1s1_000010_01.jpg")
    (tmp_path / "gallery").mkdir()
    with pytest.raises(ConfigError, match=r"bounding_box_test/ .*found gallery, query"):
        load_market(tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        load_market(tmp_path / "missing")


def test_load_market_empty_split(tmp_path):
    _touch(tmp_path / "query")
    _touch(tmp_path / "bounding_box_test", "0001_c2s1_000020_01.jpg")
    with pytest.raises(ConfigError, match="query: no images"):
        load_market(tmp_path)


def test_label_arrays():
    records = [ImageRecord(Path("a"), "a", 3, 1), ImageRecord(Path("b"), "b", -1, 2)]
    pids, camids = label_arrays(records)
    np.testing.assert_array_equal(pids, [3, -1])
    np.testing.assert_array_equal(camids, [1, 2])
    assert pids.dtype == np.int64
    with pytest.raises(ConfigError, match=r"^c: "):
        label_arrays([*records, ImageRecord(Path("c"), "c", 4, None)])
