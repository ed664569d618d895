"""Ranking metrics (CMC, mAP, mINP) and ranked-list pictures."""

from reid.evaluation.metrics import (
    RankMetrics,
    cosine_distance,
    evaluate_rank,
    ranked_matches,
    summary_table,
    to_json,
)
from reid.evaluation.visualize import IndexEntry, render_ranked_list, write_html_index

__all__ = [
    "IndexEntry",
    "RankMetrics",
    "cosine_distance",
    "evaluate_rank",
    "ranked_matches",
    "render_ranked_list",
    "summary_table",
    "to_json",
    "write_html_index",
]
