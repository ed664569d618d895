"""Re-identification ranking metrics: CMC, mAP and mINP under the Market-1501 protocol.

For each query the gallery is sorted by distance (stable sort: ties keep gallery order), then
gallery items of the same person seen by the same camera, and junk items (person ``junk_pid``), are
removed before ranks are counted. A query with no remaining correct match is skipped.

* CMC@k: fraction of queries whose first correct match is within the top k.
* AP: mean, over every correct match, of the precision at its rank; mAP averages AP over queries.
* INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021):
  ``G / R_hard``, the number of correct matches over the rank of the last one; mINP averages it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from reid.datasets.records import JUNK_PID
from reid.embeddings import l2_normalize
from reid.errors import ConfigError

logger = logging.getLogger(__name__)

# Elements of the query × gallery block processed at once; each costs about 50 bytes of temporaries.
_CHUNK_ELEMENTS = 1 << 21
REPORTED_RANKS = (1, 5, 10)


@dataclass(frozen=True, eq=False)
class RankMetrics:
    """Evaluation result. ``cmc[k - 1]`` is CMC@k; ``average_precision`` holds every query's AP
    (NaN for skipped queries), in query order."""

    cmc: np.ndarray
    mAP: float  # noqa: N815 - the name every re-id paper uses
    mINP: float  # noqa: N815
    num_valid_queries: int
    num_queries: int
    average_precision: np.ndarray

    def rank(self, k: int) -> float:
        """CMC@k (``k`` from 1 to ``len(cmc)``)."""
        if not 1 <= k <= len(self.cmc):
            raise ConfigError(f"rank {k} is outside 1..{len(self.cmc)}")
        return float(self.cmc[k - 1])


def cosine_distance(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """``1 - cos`` between every query row and every gallery row, as a (Q, G) float32 matrix.

    Rows are normalised here, so unit and non-unit embeddings give the same result.
    """
    q = np.asarray(query, dtype=np.float32)
    g = np.asarray(gallery, dtype=np.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ConfigError(f"embeddings must be (Q, D) and (G, D), got {q.shape} and {g.shape}")
    distances: np.ndarray = 1.0 - l2_normalize(q) @ l2_normalize(g).T
    return distances


def _keep_mask(
    sorted_pids: np.ndarray,
    sorted_camids: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    junk_pid: int | None,
) -> np.ndarray:
    """True where a sorted gallery item counts for the query: not the same person on the same camera,
    and not junk. Arrays broadcast: (..., G) gallery against (..., 1) queries."""
    keep = ~((sorted_pids == q_pids) & (sorted_camids == q_camids))
    if junk_pid is not None:
        keep &= sorted_pids != junk_pid
    return keep


def _check_labels(name: str, labels: np.ndarray, size: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.shape != (size,):
        raise ConfigError(f"{name} must have shape ({size},), got {array.shape}")
    return array


def ranked_matches(
    distances: np.ndarray,
    q_pid: int,
    q_camid: int,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
    *,
    top_k: int,
    junk_pid: int | None = JUNK_PID,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` gallery indices one query is scored on (protocol removals applied), nearest
    first, and a bool array saying which are the same person: what a ranked-list picture shows."""
    distances = np.asarray(distances)
    g_pids = _check_labels("g_pids", g_pids, distances.shape[0])
    g_camids = _check_labels("g_camids", g_camids, distances.shape[0])
    order = np.argsort(distances, kind="stable")
    order = order[
        _keep_mask(g_pids[order], g_camids[order], np.asarray(q_pid), np.asarray(q_camid), junk_pid)
    ]
    top = order[:top_k]
    return top, g_pids[top] == q_pid


def evaluate_rank(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    *,
    max_rank: int = 50,
    junk_pid: int | None = JUNK_PID,
    chunk_size: int | None = None,
) -> RankMetrics:
    """CMC (ranks 1..max_rank, capped at the gallery size), mAP and mINP of a (Q, G) distance matrix.

    ``chunk_size`` queries are ranked at a time (default: about two million matrix elements) so that a
    large evaluation needs little memory beyond ``distmat`` itself. ``junk_pid=None`` disables the junk
    rule. Raises :class:`ConfigError` on inconsistent shapes or if no query has a correct match.
    """
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ConfigError(f"distmat must be (Q, G), got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    q_pids = _check_labels("q_pids", q_pids, num_q)
    q_camids = _check_labels("q_camids", q_camids, num_q)
    g_pids = _check_labels("g_pids", g_pids, num_g)
    g_camids = _check_labels("g_camids", g_camids, num_g)
    if max_rank < 1:
        raise ConfigError(f"max_rank must be >= 1, got {max_rank}")
    if num_g < max_rank:
        logger.warning("gallery has %d items: CMC reported up to rank %d", num_g, num_g)
        max_rank = num_g
    step = chunk_size or max(1, _CHUNK_ELEMENTS // max(num_g, 1))

    average_precision = np.full(num_q, np.nan)
    inverse_np = np.full(num_q, np.nan)
    first_hit = np.zeros(num_q, dtype=np.int64)  # rank of the first correct match, 0 when none
    for start in range(0, num_q, step):
        rows = slice(start, start + step)
        order = np.argsort(distmat[rows], axis=1, kind="stable")
        sorted_pids = g_pids[order]
        same_person = sorted_pids == q_pids[rows, None]
        keep = _keep_mask(sorted_pids, g_camids[order], q_pids[rows, None], q_camids[rows, None], junk_pid)
        hits = same_person & keep
        ranks = np.cumsum(keep, axis=1)  # 1-based rank among kept items (meaningful where keep)
        num_hits = hits.sum(axis=1)
        found = num_hits > 0
        safe_hits = np.maximum(num_hits, 1)  # queries without a hit are masked out below
        precision = np.divide(np.cumsum(hits, axis=1), ranks, out=np.zeros(hits.shape), where=hits)
        average_precision[rows] = np.where(found, precision.sum(axis=1) / safe_hits, np.nan)
        last_hit = np.where(hits, ranks, 0).max(axis=1)
        inverse_np[rows] = np.where(found, num_hits / np.maximum(last_hit, 1), np.nan)
        first_hit[rows] = np.where(found, np.where(hits, ranks, num_g + 1).min(axis=1), 0)

    valid = ~np.isnan(average_precision)
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ConfigError("no query has a correct match in the gallery (other camera, not junk)")
    if num_valid < num_q:
        logger.info("%d of %d queries have no correct match and are skipped", num_q - num_valid, num_q)
    first_counts = np.bincount(np.minimum(first_hit[valid], max_rank + 1), minlength=max_rank + 2)
    cmc = np.cumsum(first_counts[1 : max_rank + 1]) / num_valid
    cmc.setflags(write=False)
    average_precision.setflags(write=False)
    return RankMetrics(
        cmc=cmc,
        mAP=float(average_precision[valid].mean()),
        mINP=float(inverse_np[valid].mean()),
        num_valid_queries=num_valid,
        num_queries=num_q,
        average_precision=average_precision,
    )


def _reported_ranks(metrics: RankMetrics) -> list[int]:
    return [k for k in REPORTED_RANKS if k <= len(metrics.cmc)]


def summary_table(metrics: RankMetrics, **more: RankMetrics) -> str:
    """A small aligned text table: mAP, mINP, Rank-1/5/10 (in percent) and the query counts; with
    ``more`` (e.g. ``tracks=...``), one column per result, headed by the names."""
    columns = {"": metrics, **more} if more else {"": metrics}
    ranks = [k for k in REPORTED_RANKS if all(k <= len(m.cmc) for m in columns.values())]

    def cells(m: RankMetrics) -> list[str]:
        values = [f"{100 * m.mAP:.2f}%", f"{100 * m.mINP:.2f}%"]
        values += [f"{100 * m.rank(k):.2f}%" for k in ranks]
        return [*values, f"{m.num_valid_queries} of {m.num_queries}"]

    names = ["mAP", "mINP", *(f"Rank-{k}" for k in ranks), "queries"]
    table = [cells(m) for m in columns.values()]
    heads = ["crops" if more and not head else head for head in columns]
    widths = [max(8, len(head), *(len(c) for c in col)) for head, col in zip(heads, table, strict=True)]
    width = max(len(name) for name in names)
    lines = [" " * width + "".join(f"  {h:>{w}}" for h, w in zip(heads, widths, strict=True))] if more else []
    for row, name in enumerate(names):
        lines.append(
            f"{name:<{width}}" + "".join(f"  {col[row]:>{w}}" for col, w in zip(table, widths, strict=True))
        )
    return "\n".join(lines)


def to_json(metrics: RankMetrics) -> dict[str, object]:
    """JSON-ready dict: ``mAP``, ``mINP``, ``rank1``/``rank5``/``rank10``, ``cmc`` (list, rank 1 first),
    ``num_queries``, ``num_valid_queries``; fractions in [0, 1]."""
    result: dict[str, object] = {"mAP": metrics.mAP, "mINP": metrics.mINP}
    result.update({f"rank{k}": metrics.rank(k) for k in _reported_ranks(metrics)})
    result.update(
        cmc=[float(value) for value in metrics.cmc],
        num_queries=metrics.num_queries,
        num_valid_queries=metrics.num_valid_queries,
    )
    return result
