"""The Ray indexing job on a local 2-CPU Ray instance: it must leave the gallery exactly as the local job
does (same keys, labels, metadata and failures; vectors equal to rounding), and resume the same way."""

import json

import numpy as np
import pytest

from reid.datasets import read_image_list, scan_folder
from reid.engine import EngineOptions, load_extractor, locate_weights
from reid.errors import ConfigError, ModelMismatch
from reid.gallery import GallerySpec
from reid.jobs import index_source, index_source_ray
from reid.jobs import ray_index as ray_job
from reid.jobs.ray_index import Replicas, chunk_result, plan_replicas

OPTIONS = EngineOptions(device="cpu", max_batch_size=4)
CHUNK = 4


@pytest.fixture(scope="module")
def ray_cluster():
    """One small Ray instance for the whole module (starting one takes seconds); the jobs join it."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024**2,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def weights(tiny_checkpoint):
    """The calibrated tiny model's checkpoint, written once per test run (tests/conftest.py)."""
    return tiny_checkpoint


@pytest.fixture(scope="module")
def manifest(market_dir, tmp_path_factory):
    """A JSONL manifest of the synthetic market with timestamps and metadata, plus one corrupt file."""
    folder = tmp_path_factory.mktemp("manifest")
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    lines = [
        {
            "path": str(r.path),
            "key": r.key,
            "person": r.person_id,
            "camera": r.camera_id,
            "timestamp": 1_700_000_000 + i,
            "metadata": {"site": "north", "n": i},
        }
        for i, r in enumerate(scan_folder(market_dir))
    ]
    lines.insert(3, {"path": str(corrupt), "key": "corrupt"})
    path = folder / "images.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def local_extractor(weights):
    extractor = load_extractor(weights, options=OPTIONS)
    yield extractor
    extractor.close()


@pytest.fixture(scope="module")
def local_run(manifest, local_extractor, tmp_path_factory):
    """The local job over the manifest: its summary and the gallery it wrote."""
    gallery = tmp_path_factory.mktemp("local") / "g"
    summary = index_source(manifest, gallery, local_extractor, chunk_size=CHUNK, progress=False)
    keys = [r.key for r in read_image_list(manifest) if r.key != "corrupt"]
    return summary, _stored(GallerySpec(gallery), keys)


def _stored(spec, keys):
    """key -> record for ``keys``, which must be all that the gallery holds, each once."""
    with spec.open(read_only=True) as gallery:
        assert gallery.count() == len(keys)
        return {r.key: r for r in gallery.get(gallery.lookup(keys))}  # lookup raises for a missing key


def _labels(record):
    return (record.person_id, record.camera_id, record.source, record.timestamp, dict(record.metadata))


def _tolerance(vectors):
    """1e-5, after checking that it is far below the distance between any two different images."""
    v = np.stack(vectors)
    distances = np.linalg.norm(v[:, None] - v[None], axis=-1)[~np.eye(len(v), dtype=bool)]
    assert distances.min() > 100 * 1e-5
    return 1e-5


def test_ray_job_writes_what_the_local_job_writes(ray_cluster, weights, manifest, local_run, tmp_path):
    local_summary, local = local_run
    shards = tmp_path / "shards"
    summary = index_source_ray(
        manifest, tmp_path / "g", weights, OPTIONS, chunk_size=CHUNK, shard_dir=shards, progress=False
    )
    assert (summary.total, summary.indexed, summary.skipped, summary.failed, summary.gallery_count) == (
        local_summary.total,
        local_summary.indexed,
        0,
        1,
        10,
    )
    stored = _stored(GallerySpec(tmp_path / "g"), list(local))
    atol = _tolerance([r.vector for r in local.values()])
    for key, record in stored.items():
        assert _labels(record) == _labels(local[key])
        np.testing.assert_allclose(record.vector, local[key].vector, atol=atol)
    assert summary.failure_log is not None
    assert summary.failure_log.read_text() == local_summary.failure_log.read_text()
    assert summary.failure_log.read_text().startswith(f"{manifest.parent / 'corrupt.jpg'}\tinvalid_image: ")

    # One shard per committed chunk: every key once, beside its vector.
    shard_keys = []
    for csv_path in sorted(shards.glob("*.csv")):
        keys = [line.split(",")[0] for line in csv_path.read_text().splitlines()[1:]]
        vectors = np.load(csv_path.with_suffix(".npy"))
        assert 1 <= len(keys) <= CHUNK
        for key, vector in zip(keys, vectors, strict=True):
            np.testing.assert_allclose(vector, local[key].vector, atol=atol)
        shard_keys += keys
    assert sorted(shard_keys) == sorted(local)


def test_cli_completes_a_partial_milvus_gallery_and_a_rerun_starts_nothing(
    ray_cluster, weights, market_dir, local_extractor, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("milvus_lite")
    import reid.cli

    spec = GallerySpec(str(tmp_path / "m.db"), backend="milvus")
    records = scan_folder(market_dir)
    index_source(records[:5], spec, local_extractor, chunk_size=CHUNK, progress=False)
    ids_before = {key: record.id for key, record in _stored(spec, [r.key for r in records[:5]]).items()}

    monkeypatch.setattr(reid.cli, "COMMANDS", ("index",))
    gallery = ("--gallery", spec.location, "--backend", "milvus")
    engine = ("--engine", "ray", "--replicas", 1, "--chunk-size", CHUNK)
    model = ("--weights", weights, "--device", "cpu", "--batch-size", 4)
    assert reid.cli.main([str(a) for a in ("index", market_dir, *gallery, *engine, *model)]) == 0
    assert "indexed 5, skipped 5 already indexed, failed 0" in capsys.readouterr().out
    stored = _stored(spec, [r.key for r in records])
    assert {key: stored[key].id for key in ids_before} == ids_before  # not rewritten
    expected = local_extractor.embed([r.path for r in records])
    atol = _tolerance(list(expected))
    for record, vector in zip(records, expected, strict=True):
        np.testing.assert_allclose(stored[record.key].vector, vector, atol=atol)
        assert _labels(stored[record.key])[:3] == (record.person_id, record.camera_id, str(record.path))

    def no_ray_work(*args, **kwargs):
        raise AssertionError("nothing is left to do: Ray must not run")

    monkeypatch.setattr(ray_job, "_embedded_batches", no_ray_work)
    again = index_source_ray(market_dir, spec, weights, OPTIONS, progress=False)
    assert (again.indexed, again.skipped, again.failed, again.gallery_count) == (0, 10, 0, 10)


def test_vectors_of_another_model_are_refused(market_dir):
    records = {r.key: r for r in scan_folder(market_dir)}
    keys = np.array(sorted(records)[:2], dtype=object)
    batch = {
        "key": keys,
        "vector": np.eye(2, 4, dtype=np.float32),
        "reason": np.array(["", "invalid_image: empty file"], dtype=object),
        "model": np.array(["m-1", "m-1"], dtype=object),
    }
    result = chunk_result(batch, records, "m-1")
    assert result.keys == [keys[0]]
    np.testing.assert_array_equal(result.vectors, np.eye(1, 4, dtype=np.float32))
    assert [(f.record.key, f.reason) for f in result.failures] == [(keys[1], "invalid_image: empty file")]

    batch["model"] = np.array(["m-1", "m-2"], dtype=object)
    with pytest.raises(ModelMismatch, match="m-2"):
        chunk_result(batch, records, "m-1")


@pytest.mark.parametrize(
    ("cluster", "device", "kwargs", "expected"),
    [
        ({"CPU": 8}, "auto", {}, Replicas(1, 0.0, 1.0)),
        ({"CPU": 16, "GPU": 4}, "auto", {}, Replicas(4, 1.0, 1.0)),
        ({"CPU": 16, "GPU": 4}, "cuda", {"gpus_per_replica": 0.5}, Replicas(8, 0.5, 1.0)),
        ({"CPU": 16, "GPU": 4}, "cpu", {"replicas": 3, "cpus_per_replica": 4}, Replicas(3, 0.0, 4.0)),
    ],
)
def test_replicas_default_to_one_per_gpu(cluster, device, kwargs, expected):
    plan = plan_replicas(cluster, EngineOptions(device=device), **kwargs)
    assert plan == expected
    assert plan.device == ("cuda" if expected.gpus else "cpu")


@pytest.mark.parametrize(
    ("cluster", "device", "kwargs", "message"),
    [
        ({"CPU": 8}, "cuda", {}, "needs GPUs"),
        ({"CPU": 8, "GPU": 1}, "cpu", {"gpus_per_replica": 1}, "device cpu"),
        ({"CPU": 8}, "auto", {"replicas": 0}, "replicas must be"),
        ({"CPU": 8}, "auto", {"cpus_per_replica": 0}, "CPUs per replica"),
    ],
)
def test_impossible_replica_plans_are_refused(cluster, device, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        plan_replicas(cluster, EngineOptions(device=device), **kwargs)


def test_the_driver_reads_an_artifacts_identity_from_its_manifest(openvino_artifact, tiny_checkpoint):
    """No model is loaded on the driver for an artifact (a TensorRT one could not load on its CPU), and a
    folder holding an OpenVINO IR is an artifact, not a folder without weights."""
    flip = EngineOptions(device="cpu", flip=True)
    info = ray_job.describe_model(str(openvino_artifact), flip)
    reference = load_extractor(tiny_checkpoint, options=flip)
    assert (info.dim, info.fingerprint, info.preprocess) == (512, reference.fingerprint, reference.preprocess)
    assert locate_weights(openvino_artifact.parent) == openvino_artifact
