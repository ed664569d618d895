from collections import Counter

import pytest

from reid.errors import ConfigError
from reid.training import PKSampler

# 6 identities: 0..4 with 5 crops each, identity 5 with 2 (fewer than K).
LABELS = [label for label in range(5) for _ in range(5)] + [5, 5]


def _sampler(**kwargs):
    return PKSampler(LABELS, **{"identities": 3, "instances": 4, "seed": 7, **kwargs})


def test_every_batch_holds_p_identities_times_k_crops():
    sampler = _sampler()
    batches = list(sampler)
    assert len(batches) == len(sampler) >= 2
    for batch in batches:
        counts = Counter(LABELS[i] for i in batch)
        assert len(batch) == 12
        assert sorted(counts.values()) == [4, 4, 4]
    small = [i for batch in batches for i in batch if LABELS[i] == 5]
    assert set(small) <= {25, 26}  # the short identity is repeated, never mixed with others' crops


def test_epochs_reshuffle_and_a_seed_and_epoch_fix_the_order():
    first, again = _sampler(), _sampler()
    first.set_epoch(3)
    again.set_epoch(3)
    assert list(first) == list(again)
    again.set_epoch(4)
    assert list(first) != list(again)


def test_processes_split_each_global_batch():
    whole = list(_sampler(identities=4))
    parts = [list(_sampler(identities=4, num_replicas=2, rank=rank)) for rank in (0, 1)]
    for batch, left, right in zip(whole, *parts, strict=True):
        assert left + right == batch
        assert len({LABELS[i] for i in left} & {LABELS[i] for i in right}) == 0


def test_refusals():
    with pytest.raises(ConfigError, match="identities"):
        PKSampler(LABELS, identities=7, instances=2)
    with pytest.raises(ConfigError, match="split evenly"):
        PKSampler(LABELS, identities=3, instances=2, num_replicas=2)
