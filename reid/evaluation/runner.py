"""Evaluate a model on a Market-1501 layout: embed query + gallery, rank, score, draw ranked lists.

The model enters as an *embedder*, any ``records → (N, D) array`` function, so the metric layer can be
driven by the real network (:func:`extractor_embedder`) or by a stand-in (one-hot identities, random
vectors) through exactly the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from reid.datasets import ImageRecord, MarketDataset, label_arrays, load_market
from reid.embeddings import aggregate_groups, l2_normalize
from reid.engine import Extractor
from reid.errors import ConfigError, InvalidImage
from reid.evaluation.metrics import RankMetrics, cosine_distance, evaluate_rank, ranked_matches, summary_table
from reid.evaluation.metrics import to_json as metrics_json
from reid.evaluation.thresholds import (
    DEFAULT_FMRS,
    MatchThreshold,
    pair_scores,
    thresholds_for,
    thresholds_table,
)
from reid.evaluation.visualize import IndexEntry, render_ranked_list, write_html_index
from reid.gallery.rerank import RerankConfig, rerank_unit_vectors
from reid.jobs.pipeline import Decoder, embed_stream

logger = logging.getLogger(__name__)

Embedder = Callable[[Sequence[ImageRecord]], np.ndarray]


def extractor_embedder(
    extractor: Extractor,
    *,
    chunk_size: int = 64,
    decoder: Decoder | None = None,
    progress: bool = True,
) -> Embedder:
    """An :data:`Embedder` running ``extractor`` with decoding overlapped (see
    :func:`reid.jobs.embed_stream`). An unreadable image raises :class:`InvalidImage` naming its file:
    an evaluation with missing images would be wrong."""

    def embed(records: Sequence[ImageRecord]) -> np.ndarray:
        rows: list[np.ndarray] = [np.empty((0, extractor.dim), dtype=np.float32)]
        with tqdm(total=len(records), unit="img", desc="embed", disable=None if progress else True) as bar:
            for result in embed_stream(records, extractor, chunk_size=chunk_size, decoder=decoder):
                if result.failures:
                    failure = result.failures[0]
                    raise InvalidImage(f"{failure.record.path}: {failure.reason}")
                rows.append(result.vectors)
                bar.update(len(result.records))
        return np.concatenate(rows)

    return embed


def distance_matrix(query: np.ndarray, gallery: np.ndarray, rerank: RerankConfig | None = None) -> np.ndarray:
    """Query × gallery distances: ``1 - cos``, or k-reciprocal re-ranked distances (computed from
    squared Euclidean distances of the unit vectors, as the re-ranking paper does)."""
    if rerank is None:
        return cosine_distance(query, gallery)
    return rerank_unit_vectors(l2_normalize(query), l2_normalize(gallery), rerank)


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Metrics of one evaluation; ``pictures`` is the ranked-list ``index.html`` when drawn."""

    metrics: RankMetrics
    dataset: Path
    num_query: int
    num_gallery: int
    rerank: RerankConfig | None
    seconds: float
    pictures: Path | None = None
    tracks: TrackResult | None = None
    thresholds: tuple[MatchThreshold, ...] = ()

    def table(self) -> str:
        table = summary_table(self.metrics, **({"tracks": self.tracks.metrics} if self.tracks else {}))
        return table + ("\n\n" + thresholds_table(self.thresholds) if self.thresholds else "")

    def thresholds_record(self) -> dict[str, Any]:
        """What a checkpoint's manifest keeps of the thresholds (``reid eval --save-thresholds``)."""
        return {"dataset": str(self.dataset), "levels": [level.to_dict() for level in self.thresholds]}

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "num_query": self.num_query,
            "num_gallery": self.num_gallery,
            "rerank": asdict(self.rerank) if self.rerank is not None else None,
            "seconds": self.seconds,
            "metrics": metrics_json(self.metrics),
            "tracks": self.tracks.to_json() if self.tracks is not None else None,
            "thresholds": [level.to_dict() for level in self.thresholds],
        }


@dataclass(frozen=True, eq=False)
class TrackResult:
    """Track-level metrics: each query track (its crops' aggregated embedding) ranked against the gallery
    tracks."""

    metrics: RankMetrics
    num_query_tracks: int
    num_gallery_tracks: int

    def to_json(self) -> dict[str, Any]:
        return {
            "num_query_tracks": self.num_query_tracks,
            "num_gallery_tracks": self.num_gallery_tracks,
            "metrics": metrics_json(self.metrics),
        }


def track_embeddings(
    records: Sequence[ImageRecord], vectors: np.ndarray
) -> tuple[list[ImageRecord], np.ndarray]:
    """One record and one aggregated embedding (:func:`reid.embeddings.aggregate`) per track, in order of
    first appearance. A record without ``track_id`` is a track of its own; a track whose crops disagree
    on person or camera raises :class:`ConfigError`."""
    groups = [record.track_id if record.track_id is not None else ("crop", record.key) for record in records]
    tracks, matrix = aggregate_groups(vectors, groups)
    first: dict[Any, ImageRecord] = {}
    for group, record in zip(groups, records, strict=True):
        head = first.setdefault(group, record)
        if (head.person_id, head.camera_id) != (record.person_id, record.camera_id):
            raise ConfigError(f"track {group}: crops of several people or cameras ({head.key}, {record.key})")
    return [first[track] for track in tracks], matrix


def _track_result(
    data: MarketDataset, query: np.ndarray, gallery: np.ndarray, rerank: RerankConfig | None
) -> TrackResult:
    q_records, q_tracks = track_embeddings(data.query, query)
    g_records, g_tracks = track_embeddings(data.gallery, gallery)
    if len(q_records) == len(data.query) and len(g_records) == len(data.gallery):
        raise ConfigError(
            f"{data.root}: no image belongs to a track with another (file names without a sequence, or a "
            "manifest without track_id): track-level evaluation would repeat the crop-level one"
        )
    q_pids, q_camids = label_arrays(q_records)
    g_pids, g_camids = label_arrays(g_records)
    metrics = evaluate_rank(distance_matrix(q_tracks, g_tracks, rerank), q_pids, g_pids, q_camids, g_camids)
    return TrackResult(metrics, num_query_tracks=len(q_records), num_gallery_tracks=len(g_records))


def _draw_worst(
    dataset: MarketDataset,
    distances: np.ndarray,
    metrics: RankMetrics,
    count: int,
    out_dir: Path,
    top_k: int,
) -> Path:
    """Ranked-list strips of the ``count`` queries with the lowest AP (ties: dataset order)."""
    q_pids, q_camids = label_arrays(dataset.query)
    g_pids, g_camids = label_arrays(dataset.gallery)
    valid = np.flatnonzero(~np.isnan(metrics.average_precision))
    worst = valid[np.argsort(metrics.average_precision[valid], kind="stable")][:count]
    entries = []
    for position, q in enumerate(worst, start=1):
        query = dataset.query[q]
        top, matches = ranked_matches(
            distances[q], int(q_pids[q]), int(q_camids[q]), g_pids, g_camids, top_k=top_k
        )
        png = render_ranked_list(
            query.path,
            [dataset.gallery[g].path for g in top],
            matches.tolist(),
            out_dir / f"{position:04d}_{query.path.stem}.png",
            scores=distances[q, top].tolist(),
        )
        caption = (
            f"{query.key}: person {query.person_id}, camera {query.camera_id}, "
            f"AP {metrics.average_precision[q]:.3f} (labels: rank and distance)"
        )
        entries.append(IndexEntry(png.name, caption))
    return write_html_index(
        out_dir, entries, title=f"reid eval: {count} worst queries", summary=summary_table(metrics)
    )


def evaluate_market(
    dataset: str | Path | MarketDataset,
    embed: Embedder,
    *,
    rerank: RerankConfig | None = None,
    visualize: int = 0,
    out_dir: str | Path | None = None,
    top_k: int = 10,
    track_level: bool = False,
    fmrs: Sequence[float] = DEFAULT_FMRS,
) -> EvaluationResult:
    """CMC, mAP and mINP of ``embed`` on a Market-1501 layout (standard protocol: same person on the
    same camera and junk are left out of each query's ranking).

    ``track_level`` also scores tracks (Market-1501's person × camera × sequence, or a manifest's
    ``track_id``): each track's crops are aggregated into one embedding on both sides, from the same
    crop embeddings, and the result goes into ``EvaluationResult.tracks``. ``fmrs``: the false-match
    rates to choose match thresholds for (:mod:`reid.evaluation.thresholds`; cosine scores of the crops).

    ``visualize`` > 0 draws that many worst queries (lowest AP) as PNG strips of their ``top_k``
    results, with an ``index.html``, into ``out_dir``.
    """
    if visualize < 0 or top_k < 1:
        raise ConfigError(f"visualize must be >= 0 and top_k >= 1, got {visualize} and {top_k}")
    if visualize and out_dir is None:
        raise ConfigError("visualize needs an output folder")
    started = time.perf_counter()
    data = dataset if isinstance(dataset, MarketDataset) else load_market(dataset)
    records = [*data.query, *data.gallery]
    vectors = np.asarray(embed(records), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(records):
        raise ConfigError(f"the embedder returned shape {vectors.shape} for {len(records)} images")
    query, gallery = vectors[: len(data.query)], vectors[len(data.query) :]
    distances = distance_matrix(query, gallery, rerank)
    q_pids, q_camids = label_arrays(data.query)
    g_pids, g_camids = label_arrays(data.gallery)
    metrics = evaluate_rank(distances, q_pids, g_pids, q_camids, g_camids)
    tracks = _track_result(data, query, gallery, rerank) if track_level else None
    genuine, impostor = pair_scores(query, gallery, q_pids, g_pids, q_camids, g_camids)
    # Thresholds need both kinds of pairs (a one-person set has no impostors): otherwise none are reported.
    levels = thresholds_for(genuine, impostor, fmrs) if fmrs and len(genuine) and len(impostor) else []
    pictures = None
    if visualize and out_dir is not None:
        pictures = _draw_worst(data, distances, metrics, visualize, Path(out_dir), top_k)
    return EvaluationResult(
        metrics=metrics,
        dataset=data.root,
        num_query=len(data.query),
        num_gallery=len(data.gallery),
        rerank=rerank,
        seconds=time.perf_counter() - started,
        pictures=pictures,
        tracks=tracks,
        thresholds=tuple(levels),
    )
