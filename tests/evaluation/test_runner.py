import numpy as np
import pytest
from PIL import Image

from reid.datasets import ImageRecord, label_arrays, make_synthetic_market
from reid.engine import EngineOptions, Extractor
from reid.errors import ConfigError, InvalidImage
from reid.evaluation import cosine_distance, evaluate_rank, ranked_matches, visualize
from reid.evaluation.runner import evaluate_market, extractor_embedder, track_embeddings
from reid.gallery import RerankConfig, k_reciprocal_rerank
from tests.evaluation.test_metrics import _expected_random
from tests.helpers import calibrated_extractor


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_market(tmp_path_factory.mktemp("market"))


def _one_hot(records):
    pids = sorted({r.person_id for r in records})
    return np.eye(len(pids))[[pids.index(r.person_id) for r in records]]


def _noisy_identity(seed, noise=0.9):
    """One-hot identity plus noise: right most of the time, wrong sometimes."""
    rng = np.random.default_rng(seed)

    def embed(records):
        identity = np.zeros((len(records), 40))
        identity[np.arange(len(records)), [r.person_id % 40 for r in records]] = 1.0
        return identity + noise * rng.standard_normal(identity.shape) / np.sqrt(6)

    return embed


def test_cheating_embedder_is_perfect(dataset):
    calls = []

    def cheat(records):
        calls.append([r.key for r in records])
        return _one_hot(records)

    result = evaluate_market(dataset.root, cheat)
    assert (result.metrics.mAP, result.metrics.mINP, result.metrics.rank(1)) == (1.0, 1.0, 1.0)
    assert calls == [[r.key for r in (*dataset.query, *dataset.gallery)]]  # one call, query first
    assert (result.num_query, result.num_gallery) == (24, 56)
    assert result.metrics.num_valid_queries == 24
    summary = result.to_json()
    assert summary["metrics"]["mAP"] == 1.0
    assert summary["rerank"] is None
    assert "Rank-1" in result.table()


def test_random_embedder_scores_at_chance(dataset):
    q_pids, q_camids = label_arrays(dataset.query)
    g_pids, g_camids = label_arrays(dataset.gallery)
    expected = []
    for pid, camid in zip(q_pids, q_camids, strict=True):
        kept = (g_pids != -1) & ~((g_pids == pid) & (g_camids == camid))
        expected.append(_expected_random(int(kept.sum()), int((kept & (g_pids == pid)).sum())))
    expected_ap, _, expected_rank1 = np.mean(expected, axis=0)

    rng = np.random.default_rng(0)
    runs = []
    for _ in range(60):
        metrics = evaluate_market(dataset, lambda records: rng.standard_normal((len(records), 16))).metrics
        runs.append((metrics.mAP, metrics.rank(1)))
    measured_ap, measured_rank1 = np.mean(runs, axis=0)
    assert measured_ap == pytest.approx(expected_ap, abs=0.02)
    assert measured_rank1 == pytest.approx(expected_rank1, abs=0.03)


def test_rerank_equals_a_direct_computation(dataset):
    config = RerankConfig(k1=6, k2=3, lambda_value=0.3)
    vectors = _noisy_identity(1)([*dataset.query, *dataset.gallery])
    result = evaluate_market(dataset, lambda records: vectors, rerank=config)

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q, g = unit[: len(dataset.query)], unit[len(dataset.query) :]

    def sq_dist(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    distances = k_reciprocal_rerank(sq_dist(q, g), sq_dist(q, q), sq_dist(g, g), k1=6, k2=3, lambda_value=0.3)
    q_pids, q_camids = label_arrays(dataset.query)
    g_pids, g_camids = label_arrays(dataset.gallery)
    expected = evaluate_rank(distances, q_pids, g_pids, q_camids, g_camids)
    assert result.metrics.mAP == pytest.approx(expected.mAP, abs=1e-6)
    np.testing.assert_allclose(result.metrics.cmc, expected.cmc)
    plain = evaluate_market(dataset, lambda records: vectors).metrics
    assert result.metrics.mAP != pytest.approx(plain.mAP)  # re-ranking was applied
    assert result.to_json()["rerank"] == {"k1": 6, "k2": 3, "lambda_value": 0.3, "top_n": 100}


def _frame_colour(png, tile):
    """Colour of the frame of gallery tile ``tile`` (1 = first result) in a strip drawn at 128×64."""
    step = 64 + 2 * visualize.BORDER + visualize.GAP
    left = visualize.GAP + step + visualize.QUERY_GAP + (tile - 1) * step
    with Image.open(png) as image:
        return image.convert("RGB").getpixel((left + 1, visualize.GAP + 1))


def test_visualize_draws_the_worst_queries(dataset, tmp_path):
    vectors = _noisy_identity(2)([*dataset.query, *dataset.gallery])
    result = evaluate_market(dataset, lambda records: vectors, visualize=3, out_dir=tmp_path, top_k=5)
    assert result.pictures == tmp_path / "index.html"

    ap = result.metrics.average_precision
    worst = np.argsort(ap, kind="stable")[:3]
    assert ap[worst[-1]] < 1.0  # the noise makes mistakes, so the choice matters
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == [
        f"000{i + 1}_{dataset.query[q].path.stem}.png" for i, q in enumerate(worst)
    ]

    distances = cosine_distance(vectors[:24], vectors[24:])
    g_pids, g_camids = label_arrays(dataset.gallery)
    for png, q in zip(pngs, worst, strict=True):
        query = dataset.query[q]
        _, matches = ranked_matches(distances[q], query.person_id, query.camera_id, g_pids, g_camids, top_k=5)
        colours = [_frame_colour(png, tile) for tile in range(1, 6)]
        assert colours == [visualize.MATCH_COLOUR if m else visualize.MISMATCH_COLOUR for m in matches]
    page = (tmp_path / "index.html").read_text()
    assert all(f'src="{p.name}"' in page for p in pngs)
    assert "mAP" in page


def test_extractor_embedder_equals_the_extractor_and_names_a_bad_file(dataset, tmp_path):
    extractor = calibrated_extractor()
    records = list(dataset.query[:5])
    embed = extractor_embedder(extractor, chunk_size=2, progress=False)
    np.testing.assert_allclose(embed(records), extractor.embed([r.path for r in records]), atol=1e-5)
    assert embed([]).shape == (0, extractor.dim)
    bad = tmp_path / "0001_c1s1_000001_01.jpg"
    bad.write_bytes(b"broken")
    with pytest.raises(InvalidImage, match=str(bad)):
        embed([*records, ImageRecord(path=bad, key="bad", person_id=1, camera_id=1)])
    extractor.close()


def test_argument_errors(dataset, tmp_path):
    with pytest.raises(ConfigError, match="output folder"):
        evaluate_market(dataset, _one_hot, visualize=2)
    with pytest.raises(ConfigError, match="shape"):
        evaluate_market(dataset, lambda records: np.zeros((3, 4)))


def test_track_level_beats_single_crops_with_a_good_but_not_perfect_model(trained_small, labelled_market):
    extractor = Extractor.from_checkpoint(trained_small.checkpoint, options=EngineOptions(device="cpu"))
    try:
        result = evaluate_market(
            labelled_market, extractor_embedder(extractor, progress=False), track_level=True
        )
    finally:
        extractor.close()
    assert result.tracks is not None
    # 8 people × 3 cameras on each side; distractors and junk stay single crops in the gallery.
    assert (result.tracks.num_query_tracks, result.tracks.num_gallery_tracks) == (24, 24 + 4 + 4)
    crops, tracks = result.metrics.mAP, result.tracks.metrics.mAP
    assert crops < 0.999  # good, not perfect: there is something for aggregation to fix
    assert tracks > crops, (crops, tracks)
    assert "tracks" in result.table()
    assert result.to_json()["tracks"]["metrics"]["mAP"] == tracks


def test_track_level_needs_tracks(market_dir):
    with pytest.raises(ConfigError, match="no image belongs to a track"):
        evaluate_market(market_dir, _one_hot, track_level=True)


def test_a_track_of_several_people_is_refused(tmp_path):
    records = [
        ImageRecord(tmp_path / f"{i}.jpg", f"{i}", person_id=i, camera_id=1, track_id="t") for i in (1, 2)
    ]
    with pytest.raises(ConfigError, match="several people"):
        track_embeddings(records, np.eye(2))


def test_thresholds_are_reported_from_the_crop_scores(dataset):
    result = evaluate_market(dataset, _noisy_identity(0), fmrs=(0.05,))
    (level,) = result.thresholds
    assert level.fmr == 0.05
    assert level.measured_fmr <= 0.05
    assert 0 < level.tmr <= 1
    assert result.thresholds_record()["levels"][0]["score"] == level.score
