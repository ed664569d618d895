"""Strict loading: a checkpoint either fills every tensor of the model, or the error says what did not fit."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from reid.checkpoints.sources import HEAD_CLASSIFIER
from reid.errors import CheckpointError

logger = logging.getLogger(__name__)

# BatchNorm's step counter: absent from pre-0.4.1 files and irrelevant at inference.
NUM_BATCHES_TRACKED = "num_batches_tracked"
# How many keys an error message lists per category before summarising the rest.
MAX_LISTED = 10


@dataclass(frozen=True)
class LoadReport:
    """What a strict load did besides copying matching tensors.

    ``dropped_classifier``: classifier entries of the file that the model has no place for (inference
    models have no classifier). ``filled``: model entries absent from the file that keep their initial
    value: BatchNorm step counters, and the classifier of a model built with ``num_classes > 0``.
    """

    loaded: int
    dropped_classifier: tuple[str, ...] = ()
    filled: tuple[str, ...] = ()


def _listing(kind: str, keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    more = f" (and {len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else ""
    return f"{len(keys)} {kind}: {shown}{more}"


def _is_optional(key: str) -> bool:
    return key.startswith(HEAD_CLASSIFIER) or key.endswith(NUM_BATCHES_TRACKED)


def load_into(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, what: str = "checkpoint"
) -> LoadReport:
    """Copy ``state_dict`` (our layout) into ``model``; any difference but optional entries is an error.

    Raises :class:`CheckpointError` listing missing keys, unexpected keys and shape mismatches (each with
    both shapes) together, so one run shows everything that is wrong. ``what`` names the file in messages.
    """
    expected = model.state_dict()
    provided = dict(state_dict)
    dropped = tuple(sorted(k for k in provided if k not in expected and k.startswith(HEAD_CLASSIFIER)))
    for key in dropped:
        del provided[key]
    filled = tuple(sorted(k for k in expected if k not in provided and _is_optional(k)))
    for key in filled:
        provided[key] = expected[key]
    if any(k.startswith(HEAD_CLASSIFIER) for k in filled):
        logger.warning("%s has no classifier weights; the model's classifier keeps its initial values", what)

    missing = sorted(set(expected) - set(provided))
    unexpected = sorted(set(provided) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in sorted(provided.items())
        if k in expected and v.shape != expected[k].shape
    ]
    problems = [
        _listing(kind, keys)
        for kind, keys in (
            ("missing key(s)", missing),
            ("unexpected key(s)", unexpected),
            ("shape mismatch(es)", mismatched),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(f"{what} does not match the model: " + "; ".join(problems))
    model.load_state_dict(provided, strict=True)
    if dropped:
        logger.info("%s: ignored %d classifier entr(y/ies) the model does not use", what, len(dropped))
    return LoadReport(loaded=len(provided) - len(filled), dropped_classifier=dropped, filled=filled)
