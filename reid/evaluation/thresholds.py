"""Match decisions: the cosine score above which two crops count as the same person, chosen for a target
false-match rate (FMR) on a labelled set.

Pairs follow the ranking protocol: every query against every gallery crop, except the same person seen by
the same camera (trivially similar) and junk. Genuine pairs show the same person, impostor pairs two
different people. The threshold for a target FMR ``f`` is the lowest score that at most ``f`` of the
impostor pairs reach; the true-match rate (TMR) is the share of genuine pairs that reach it. With ``n``
impostor pairs an FMR below ``1/n`` cannot be measured: such a level is reported as not ``reliable``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reid.datasets.records import JUNK_PID
from reid.embeddings import l2_normalize
from reid.errors import ConfigError

DEFAULT_FMRS = (0.01, 0.001)


@dataclass(frozen=True)
class MatchThreshold:
    fmr: float  # the target false-match rate
    score: float  # a pair scoring at least this (cosine) is declared the same person
    tmr: float  # genuine pairs reaching the score
    measured_fmr: float  # impostor pairs reaching the score (<= fmr)
    genuine_pairs: int
    impostor_pairs: int

    @property
    def reliable(self) -> bool:
        return self.impostor_pairs * self.fmr >= 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reliable": self.reliable}


def pair_scores(
    query: np.ndarray,
    gallery: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    *,
    junk_pid: int | None = JUNK_PID,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of the genuine and of the impostor query × gallery pairs (protocol removals applied)."""
    scores = l2_normalize(query) @ l2_normalize(gallery).T
    q_pids, g_pids = np.asarray(q_pids)[:, None], np.asarray(g_pids)[None, :]
    q_camids, g_camids = np.asarray(q_camids)[:, None], np.asarray(g_camids)[None, :]
    if scores.shape != (q_pids.shape[0], g_pids.shape[1]):
        raise ConfigError(f"labels do not match the embeddings' shapes {scores.shape}")
    counted = ~((q_pids == g_pids) & (q_camids == g_camids))
    if junk_pid is not None:
        counted &= g_pids != junk_pid
    same = q_pids == g_pids
    return scores[counted & same], scores[counted & ~same]


def thresholds_for(
    genuine: np.ndarray, impostor: np.ndarray, fmrs: Sequence[float] = DEFAULT_FMRS
) -> list[MatchThreshold]:
    """The threshold and TMR for each target FMR (see the module's docstring)."""
    if len(genuine) == 0 or len(impostor) == 0:
        raise ConfigError("match thresholds need genuine and impostor pairs: label at least two people")
    descending = np.sort(np.asarray(impostor, dtype=np.float64))[::-1]
    genuine = np.asarray(genuine, dtype=np.float64)
    levels = []
    for fmr in fmrs:
        if not 0 < fmr < 1:
            raise ConfigError(f"a false-match rate lies strictly between 0 and 1, got {fmr}")
        allowed = math.floor(fmr * len(descending))  # impostor pairs that may reach the threshold
        # Just above the first impostor score that must be refused; scores below every impostor: -1.
        score = float(np.nextafter(descending[allowed], np.inf)) if allowed < len(descending) else -1.0
        levels.append(
            MatchThreshold(
                fmr=float(fmr),
                score=score,
                tmr=float((genuine >= score).mean()),
                measured_fmr=float((descending >= score).mean()),
                genuine_pairs=len(genuine),
                impostor_pairs=len(descending),
            )
        )
    return levels


def thresholds_table(levels: Sequence[MatchThreshold]) -> str:
    lines = ["FMR        threshold     TMR"]
    for level in levels:
        note = "" if level.reliable else f"  (only {level.impostor_pairs} impostor pairs: coarse)"
        lines.append(f"{level.fmr:<9g}  {level.score:>9.4f}  {100 * level.tmr:>6.2f}%{note}")
    return "\n".join(lines)
