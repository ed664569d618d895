"""Batch indexing on a Ray cluster: the local job's resumable gallery writes, with the decoding and the
model spread over Ray Data.

What runs where:

- the driver (this process) lists the source, opens the gallery, skips the keys it already holds and
  commits each chunk of results with one gallery write, shard and failure-log lines included, through
  the same :class:`reid.jobs.index.IndexRun` as the local job. Writes stay in one place because a FAISS
  gallery has a single writer.
- Ray tasks decode and resize chunks of images (:func:`reid.jobs.pipeline.prepare_chunk`); an unreadable
  image travels on as a reason string, never as an exception. Pixels stay uint8 between the stages.
- an actor pool of model replicas (one GPU each by default, else CPU) embeds them; every replica loads
  its own extractor from the weights path and the engine options (a model is never pickled), and the
  driver checks the model fingerprint that comes back with every vector before writing it.

Resuming works as in the local job: each chunk is committed with one write, so a killed run loses at most
the chunks in flight and a re-run embeds only the keys the gallery lacks. Ray is imported only here, and
only when a job runs, so the rest of the package does not need it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from reid.datasets import ImageRecord
from reid.engine import EngineOptions, embedding_fingerprint, load_extractor, locate_weights
from reid.errors import ConfigError, ModelMismatch
from reid.gallery import GallerySpec
from reid.jobs.index import DEFAULT_CHUNK_SIZE, IndexSummary, open_index_run
from reid.jobs.pipeline import ChunkResult, Failure, prepare_chunk
from reid.preprocess import PreprocessConfig, Preprocessor
from reid.runtimes import find_artifact
from reid.runtimes.artifact import read_artifact_manifest
from reid.zoo.resolve import resolve_weights

logger = logging.getLogger(__name__)

RAY_MISSING = "the Ray engine needs the ray extra: pip install '.[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module with Ray Data loaded, or a :class:`ConfigError` naming the extra to install."""
    try:
        import ray
        import ray.data  # a module of its own, not loaded by `import ray`
    except ImportError as exc:
        raise ConfigError(f"{RAY_MISSING} ({exc})") from None
    return ray


@dataclass(frozen=True)
class ModelInfo:
    """What the driver needs to know of the model without running it: the gallery's dim and fingerprint,
    and the preprocessing the decode tasks apply."""

    dim: int
    fingerprint: str
    preprocess: PreprocessConfig


def describe_model(weights: str | None, options: EngineOptions) -> ModelInfo:
    """Load the model once on this machine's CPU, as a replica will load it, and read its identity.

    Only what changes the fingerprint is kept from ``options`` (``flip``; the runtime, which picks an
    exported artifact, whose manifest is read instead): the device, dtype and optimisations are the
    replicas' business.
    """
    artifact = find_artifact(weights, options.runtime) if weights is not None else None
    if artifact is not None:
        # An exported artifact's manifest says it all (a TensorRT one could not even load on a CPU driver).
        manifest = read_artifact_manifest(artifact)
        fingerprint = embedding_fingerprint(manifest.fingerprint, flip=options.flip)
        return ModelInfo(manifest.embedding_dim, fingerprint, manifest.preprocess)
    cheap = EngineOptions(
        runtime=options.runtime,
        device="cpu",
        dtype="fp32",
        fold_bn=False,
        channels_last=False,
        flip=options.flip,
    )
    extractor = load_extractor(weights, options=cheap, decode_workers=1)
    try:
        return ModelInfo(extractor.dim, extractor.fingerprint, extractor.preprocess)
    finally:
        extractor.close()


@dataclass(frozen=True)
class Replicas:
    """The model actor pool: how many, and the resources each one holds."""

    count: int
    gpus: float
    cpus: float

    @property
    def device(self) -> str:
        # Ray shows each actor only the GPUs it holds, so "cuda" is always the actor's own.
        return "cuda" if self.gpus > 0 else "cpu"


def plan_replicas(
    cluster: Mapping[str, float],
    options: EngineOptions,
    *,
    replicas: int | None = None,
    gpus_per_replica: float | None = None,
    cpus_per_replica: float = 1.0,
) -> Replicas:
    """Size the actor pool for ``cluster`` (``ray.cluster_resources()``).

    Defaults: one GPU per replica and one replica per GPU when the cluster has GPUs and ``options.device``
    is not ``cpu``; otherwise a single CPU replica.
    """
    cluster_gpus = float(cluster.get("GPU", 0.0))
    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if cluster_gpus >= 1 and options.device != "cpu" else 0.0
    if gpus_per_replica < 0 or cpus_per_replica <= 0:
        raise ConfigError(
            f"GPUs per replica must be >= 0 and CPUs per replica > 0, got {gpus_per_replica} and "
            f"{cpus_per_replica}"
        )
    if gpus_per_replica > 0 and options.device == "cpu":
        raise ConfigError("device cpu was asked for, but the replicas were given GPUs")
    if gpus_per_replica == 0 and options.device.startswith("cuda"):
        raise ConfigError(
            f"device {options.device} needs GPUs, but the replicas get none ({cluster_gpus:g} in the cluster)"
        )
    if replicas is None:
        replicas = max(1, int(cluster_gpus // gpus_per_replica)) if gpus_per_replica > 0 else 1
    if replicas < 1:
        raise ConfigError(f"replicas must be >= 1, got {replicas}")
    if replicas * gpus_per_replica > cluster_gpus or replicas * cpus_per_replica > cluster.get("CPU", 0.0):
        logger.warning(
            "%d replicas need %g GPUs and %g CPUs, the cluster has %g and %g now: some wait for resources",
            replicas,
            replicas * gpus_per_replica,
            replicas * cpus_per_replica,
            cluster_gpus,
            cluster.get("CPU", 0.0),
        )
    return Replicas(replicas, gpus_per_replica, cpus_per_replica)


# --- the two Ray Data stages: plain functions of numpy batches -----------------------------------------


def decode_batch(batch: Mapping[str, np.ndarray], preprocess: PreprocessConfig) -> dict[str, np.ndarray]:
    """``key``/``path`` rows → ``key``, ``pixels`` (uint8 N×3×H×W) and ``reason`` (``""`` when decoded;
    else the failure, with zero pixels)."""
    records = [
        ImageRecord(path=Path(path), key=str(key))
        for key, path in zip(batch["key"], batch["path"], strict=True)
    ]
    with Preprocessor(preprocess, workers=1) as decoder:  # one task per CPU: Ray supplies the parallelism
        chunk = prepare_chunk(records, decoder)
    good = len(chunk.records)
    pixels = np.zeros((len(records), 3, preprocess.height, preprocess.width), dtype=np.uint8)
    if good:
        pixels[:good] = chunk.pixels.numpy()
    keys = [r.key for r in chunk.records] + [f.record.key for f in chunk.failures]
    return {
        "key": np.array(keys, dtype=object),
        "pixels": pixels,
        "reason": np.array([""] * good + [f.reason for f in chunk.failures], dtype=object),
    }


class EmbedReplica:
    """A model replica (a Ray actor): builds its own extractor, then embeds the decoded rows of each batch.

    Every row carries the replica's model fingerprint, so that the driver refuses vectors of another model
    (a node that reads another weights file) before anything reaches the gallery.
    """

    def __init__(self, weights: str | None, options: EngineOptions) -> None:
        self.extractor = load_extractor(weights, options=options, decode_workers=1)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``key``/``pixels``/``reason`` → ``key``, ``vector`` (float32 N×dim; zeros for failures),
        ``reason`` and ``model``."""
        decoded = batch["reason"] == ""
        vectors = np.zeros((len(decoded), self.extractor.dim), dtype=np.float32)
        if decoded.any():
            vectors[decoded] = self.extractor.embed_batch(torch.from_numpy(batch["pixels"][decoded]))
        model = np.full(len(decoded), self.extractor.fingerprint, dtype=object)
        return {"key": batch["key"], "vector": vectors, "reason": batch["reason"], "model": model}


def chunk_result(
    batch: Mapping[str, np.ndarray], records: Mapping[str, ImageRecord], fingerprint: str
) -> ChunkResult:
    """An embedded batch back as the local job's :class:`ChunkResult`, with the driver's full records;
    :class:`ModelMismatch` when a replica ran another model than ``fingerprint``."""
    others = set(batch["model"]) - {fingerprint}
    if others:
        raise ModelMismatch(
            f"a replica ran model {', '.join(sorted(others))} instead of {fingerprint}: every Ray node "
            "must read the same weights file"
        )
    decoded = batch["reason"] == ""
    keys = batch["key"]
    failures = [
        Failure(records[str(key)], str(reason))
        for key, reason in zip(keys[~decoded], batch["reason"][~decoded], strict=True)
    ]
    return ChunkResult(
        tuple(records[str(key)] for key in keys[decoded]),
        np.ascontiguousarray(batch["vector"][decoded], dtype=np.float32),
        tuple(failures),
    )


# --- the job -------------------------------------------------------------------------------------------


@contextmanager
def ray_session(ray: ModuleType, address: str | None) -> Iterator[None]:
    """Use the Ray instance this process already joined, else join ``address`` (``None``: ``RAY_ADDRESS``
    or a new local instance) and leave it when done."""
    if ray.is_initialized():
        yield
        return
    ray.init(address=address, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def _embedded_batches(
    ray: ModuleType,
    pending: Sequence[ImageRecord],
    *,
    weights: str | None,
    options: EngineOptions,
    model: ModelInfo,
    chunk_size: int,
    replicas: Replicas,
) -> Iterator[Mapping[str, np.ndarray]]:
    rows = [{"key": record.key, "path": str(record.path.resolve())} for record in pending]
    chunks = -(-len(rows) // chunk_size)
    dataset = ray.data.from_items(rows, override_num_blocks=chunks)  # a block per chunk
    dataset.context.enable_progress_bars = False  # the driver's own bar counts committed images
    cpus = int(ray.cluster_resources().get("CPU", 1))
    dataset = dataset.map_batches(
        decode_batch,
        batch_size=chunk_size,
        batch_format="numpy",
        fn_kwargs={"preprocess": model.preprocess},
        # At most one decode task per cluster CPU and per chunk. Ray fuses a task stage into the following
        # actor stage (decoding inside the replicas) only when both pool sizes and resources are equal: when
        # the replicas hold every CPU, or there are no more chunks than replicas, where it costs nothing.
        compute=ray.data.TaskPoolStrategy(size=max(1, min(cpus, chunks))),
    )
    dataset = dataset.map_batches(
        EmbedReplica,
        batch_size=chunk_size,
        batch_format="numpy",
        fn_constructor_kwargs={
            "weights": weights,
            "options": replace(options, device=replicas.device),
        },
        compute=ray.data.ActorPoolStrategy(size=replicas.count),
        num_gpus=replicas.gpus,
        num_cpus=replicas.cpus,
    )
    yield from dataset.iter_batches(batch_size=chunk_size, batch_format="numpy")


def index_source_ray(
    source: str | Path | Sequence[ImageRecord],
    gallery: str | Path | GallerySpec,
    weights: str | Path | None,
    options: EngineOptions | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    replicas: int | None = None,
    gpus_per_replica: float | None = None,
    cpus_per_replica: float = 1.0,
    resume: bool = True,
    shard_dir: str | Path | None = None,
    log_path: str | Path | None = None,
    progress: bool = True,
    address: str | None = None,
) -> IndexSummary:
    """Embed ``source`` into ``gallery`` like :func:`reid.jobs.index_source`, with Ray doing the work.

    ``weights`` (a checkpoint file or a folder holding one, a zoo name or URL, downloaded on the driver;
    ``None``: random weights, for demos) and
    ``options`` are what every replica loads; the path must be readable on every Ray node, like the
    images. ``replicas``, ``gpus_per_replica`` and ``cpus_per_replica`` size the model actor pool (see
    :func:`plan_replicas`). ``address``: the Ray cluster to join when this process has not joined one
    (``None``: ``RAY_ADDRESS``, else a new local instance, shut down at the end). Ray is not started at all
    when the gallery already holds every key. The rest as :func:`reid.jobs.index_source`.
    """
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    ray = import_ray()
    options = options or EngineOptions()
    # A zoo name or URL is downloaded here once; replicas read the cached file.
    local = resolve_weights(weights).path if weights is not None else None
    resolved = locate_weights(local, options.runtime)
    # Absolute, so that workers resolve it whatever their working directory.
    weights_path = str(resolved.resolve()) if resolved is not None else None
    model = describe_model(weights_path, options)
    with open_index_run(
        source,
        gallery,
        dim=model.dim,
        fingerprint=model.fingerprint,
        resume=resume,
        shard_dir=shard_dir,
        log_path=log_path,
        progress=progress,
    ) as run:
        if run.pending:
            by_key = {record.key: record for record in run.pending}
            with ray_session(ray, address):
                pool = plan_replicas(
                    ray.cluster_resources(),
                    options,
                    replicas=replicas,
                    gpus_per_replica=gpus_per_replica,
                    cpus_per_replica=cpus_per_replica,
                )
                logger.info(
                    "%d replicas on %s (%g GPU, %g CPU each)", pool.count, pool.device, pool.gpus, pool.cpus
                )
                for batch in _embedded_batches(
                    ray,
                    run.pending,
                    weights=weights_path,
                    options=options,
                    model=model,
                    chunk_size=chunk_size,
                    replicas=pool,
                ):
                    result = chunk_result(batch, by_key, model.fingerprint)
                    run.commit(result)
                    run.advance(result)
        return run.finish()
