"""A resumable, shardable sampler: one seeded permutation per epoch, split across processes."""

from __future__ import annotations

import numpy as np
import torch


class EpochShardSampler(torch.utils.data.Sampler):
    """Yields this rank's share of a per-epoch permutation, skipping ``skip`` already-seen indices.

    Every rank draws the same permutation (seed, epoch) and takes ``perm[rank::world]``, truncated
    so all ranks see the same number of samples (DistributedDataParallel needs equal step counts).
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside world size {world}")
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def per_rank(self) -> int:
        return self.size // self.world

    def __len__(self) -> int:
        return max(self.per_rank() - self.skip, 0)

    def __iter__(self):
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        mine = perm[self.rank :: self.world][: self.per_rank()]
        return iter(mine[self.skip :].tolist())
