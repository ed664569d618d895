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
from reid.engine import Extractor
from reid.errors import ConfigError, InvalidImage
from reid.evaluation.metrics import RankMetrics, cosine_distance, evaluate_rank, ranked_matches, summary_table
from reid.evaluation.metrics import to_json as metrics_json
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
    q = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    return rerank_unit_vectors(q, g, rerank)


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

    def table(self) -> str:
        return summary_table(self.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "num_query": self.num_query,
            "num_gallery": self.num_gallery,
            "rerank": asdict(self.rerank) if self.rerank is not None else None,
            "seconds": self.seconds,
            "metrics": metrics_json(self.metrics),
        }


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
) -> EvaluationResult:
    """CMC, mAP and mINP of ``embed`` on a Market-1501 layout (standard protocol: same person on the
    same camera and junk are left out of each query's ranking).

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
    )
