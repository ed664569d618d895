"""The P×K identity sampler: every batch holds P identities with K crops each, so each crop has positives
and negatives in its batch for the triplet loss (torchreid's RandomIdentitySampler, fast-reid's
NaiveIdentitySampler)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from reid.errors import ConfigError


class PKSampler(Sampler[list[int]]):
    """Batches of dataset indices, ``identities × instances`` long, reshuffled per epoch.

    An epoch cuts each identity's crops (shuffled; repeated when it has fewer than K) into groups of K and
    draws P identities per batch from those with groups left, until fewer than P remain. The order depends
    only on ``seed`` and the epoch (:meth:`set_epoch`), so a resumed run sees the same batches.

    With ``num_replicas`` > 1 (DistributedDataParallel) every process builds the same global batches and
    keeps its own slice of ``identities / num_replicas`` identities, so the processes together see
    exactly the single-process batch.
    """

    def __init__(
        self,
        labels: Sequence[int],
        *,
        identities: int,
        instances: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if identities < 2 or instances < 1:
            raise ConfigError("a P×K batch needs at least 2 identities and 1 instance each")
        if identities % num_replicas:
            raise ConfigError(
                f"{identities} identities per batch cannot be split evenly over {num_replicas} processes"
            )
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.identities, self.instances = identities, instances
        self.seed, self.num_replicas, self.rank = seed, num_replicas, rank
        self.epoch = 0
        by_label: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            by_label[int(label)].append(index)
        self._by_label = [np.asarray(by_label[label]) for label in sorted(by_label)]
        if len(self._by_label) < identities:
            raise ConfigError(
                f"the training set has {len(self._by_label)} identities; a batch needs {identities}"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups: list[list[np.ndarray]] = []
        for indices in self._by_label:
            shuffled = rng.permutation(indices)
            if len(shuffled) < self.instances:
                shuffled = rng.choice(indices, size=self.instances, replace=True)
            usable = len(shuffled) - len(shuffled) % self.instances
            groups.append(list(shuffled[:usable].reshape(-1, self.instances)))
        batches: list[np.ndarray] = []
        while True:
            available = [label for label, left in enumerate(groups) if left]
            if len(available) < self.identities:
                return batches
            chosen = rng.choice(available, size=self.identities, replace=False)
            batches.append(np.concatenate([groups[label].pop() for label in chosen]))

    def __iter__(self) -> Iterator[list[int]]:
        per_replica = self.identities // self.num_replicas * self.instances
        for batch in self._global_batches():
            yield batch[self.rank * per_replica : (self.rank + 1) * per_replica].tolist()

    def __len__(self) -> int:
        return len(self._global_batches())
