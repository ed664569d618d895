import numpy as np
import pytest
from PIL import Image

from reid.datasets.market import load_market, parse_market_name
from reid.datasets.records import label_arrays
from reid.datasets.synthetic import make_synthetic_market
from reid.errors import ConfigError
from reid.evaluation.metrics import cosine_distance, evaluate_rank


def _files(root):
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_layout_and_counts(tmp_path):
    dataset = make_synthetic_market(
        tmp_path,
        num_ids=5,
        num_train_ids=3,
        num_cameras=4,
        images_per_id_per_camera=2,
        num_distractors=3,
        num_junk=2,
    )
    assert dataset == load_market(tmp_path)
    assert len(dataset.query) == 5 * 4
    assert len(dataset.gallery) == 5 * 4 * 2 + 3 + 2
    assert len(dataset.train) == 3 * 4 * 2
    q_pids, q_camids = label_arrays(dataset.query)
    g_pids, g_camids = label_arrays(dataset.gallery)
    assert set(q_pids) == set(range(4, 9))
    assert {r.person_id for r in dataset.train} == {1, 2, 3}
    assert sorted(g_pids[~np.isin(g_pids, q_pids)]) == [-1, -1, 0, 0, 0]
    assert set(g_camids) == {1, 2, 3, 4}
    names = [r.path.name for r in (*dataset.query, *dataset.gallery, *dataset.train)]
    assert len(set(names)) == len(names)
    assert all(parse_market_name(name).scheme == "market1501" for name in names)
    for pid in set(q_pids):  # one query per camera, and matches on every camera
        assert sorted(q_camids[q_pids == pid]) == [1, 2, 3, 4]
        assert sorted(g_camids[g_pids == pid]) == [1, 1, 2, 2, 3, 3, 4, 4]


def test_image_size_and_format(tmp_path):
    dataset = make_synthetic_market(tmp_path, height=48, width=24, image_format="png", num_train_ids=0)
    assert not (tmp_path / "bounding_box_train").exists()
    with Image.open(dataset.query[0].path) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (24, 48), "RGB")


def test_same_seed_gives_identical_bytes(tmp_path):
    make_synthetic_market(tmp_path / "a", seed=3)
    make_synthetic_market(tmp_path / "b", seed=3)
    make_synthetic_market(tmp_path / "c", seed=4)
    first, second, other = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def _colour_feature(path):
    """Mean colour of the shirt and of the trousers: pixels in those rows that differ from the
    background (read in the top-left corner, which the figure never reaches)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    height = pixels.shape[0]
    background = pixels[:6, :4].reshape(-1, 3).mean(axis=0)
    parts = []
    for top, bottom in ((0.27, 0.34), (0.7, 0.9)):
        band = pixels[int(top * height) : int(bottom * height)].reshape(-1, 3)
        figure = band[np.linalg.norm(band - background, axis=1) > 40]
        parts.append(figure.mean(axis=0) if len(figure) else background)  # junk crops have no trousers
    return np.concatenate(parts) - 128.0


def test_identities_are_recognisable_across_cameras(tmp_path):
    """A hand-made colour feature finds the right person on another camera: the data is learnable,
    and camera changes do not hide who is who."""
    dataset = make_synthetic_market(tmp_path)
    q_pids, q_camids = label_arrays(dataset.query)
    g_pids, g_camids = label_arrays(dataset.gallery)
    query = np.stack([_colour_feature(r.path) for r in dataset.query])
    gallery = np.stack([_colour_feature(r.path) for r in dataset.gallery])
    metrics = evaluate_rank(cosine_distance(query, gallery), q_pids, g_pids, q_camids, g_camids)
    assert metrics.rank(1) >= 0.95  # chance is about 0.1
    assert metrics.mAP >= 0.9


def test_refuses_non_empty_split_and_bad_arguments(tmp_path):
    make_synthetic_market(tmp_path)
    with pytest.raises(ConfigError, match="not empty"):
        make_synthetic_market(tmp_path)
    with pytest.raises(ConfigError, match="num_cameras >= 2"):
        make_synthetic_market(tmp_path / "x", num_cameras=1)
    with pytest.raises(ConfigError, match="single-digit camera"):
        make_synthetic_market(tmp_path / "y", num_cameras=10)
    with pytest.raises(ConfigError, match="at least 16"):
        make_synthetic_market(tmp_path / "z", height=8)
