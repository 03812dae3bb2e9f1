"""Samplers for distributed evaluation, and batch samplers that key each index with its epoch."""
import numbers
from typing import Iterator, List, Sized, Union

import paddle

from .sample_seed import SampleKey

__all__ = ['KeyedBatchSampler', 'KeyedDistributedBatchSampler', 'OrderedShardSampler']


def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return int(value)


class OrderedShardSampler(paddle.io.Sampler):
    """This rank's share of the indices ``0 .. N-1``, in order, with no padding or repeats.

    ``contiguous=True`` gives rank ``r`` one block (the first ``N % world_size`` ranks get one
    extra index); ``contiguous=False`` gives it ``r, r + world_size, ...``. Across ranks every
    index appears exactly once, so per-rank sums (correct counts, losses) all-reduced once at
    the end count each image exactly once. Shard sizes differ by at most one, so a rank may
    run one batch fewer than another: do not all-reduce per batch.
    """

    def __init__(self, data_source: Union[Sized, int], num_replicas: int = 1, rank: int = 0,
                 contiguous: bool = True) -> None:
        super().__init__()
        size = data_source if isinstance(data_source, numbers.Integral) else len(data_source)
        self.total_size = _check_int('dataset size', size, 0)
        self.num_replicas = _check_int('num_replicas', num_replicas, 1)
        self.rank = _check_int('rank', rank, 0)
        if self.rank >= self.num_replicas:
            raise ValueError(f'rank {rank} is out of range for {num_replicas} replicas')
        self.contiguous = bool(contiguous)

    def indices(self) -> List[int]:
        """The dataset indices this rank visits, in visiting order."""
        if not self.contiguous:
            return list(range(self.rank, self.total_size, self.num_replicas))
        base, extra = divmod(self.total_size, self.num_replicas)
        start = self.rank * base + min(self.rank, extra)
        return list(range(start, start + base + (1 if self.rank < extra else 0)))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        base, extra = divmod(self.total_size, self.num_replicas)
        return base + (1 if self.rank < extra else 0)

    def __repr__(self) -> str:
        kind = 'contiguous' if self.contiguous else 'strided'
        return (f'{type(self).__name__}(rank={self.rank}/{self.num_replicas}, {kind}, '
                f'{len(self)} of {self.total_size})')


class _KeyedBatches:
    """Mixin for a paddle batch sampler: batches of :class:`SampleKey` (seed, rank, epoch) instead of ints.

    The keys are made when the pass starts, i.e. when the loader asks for the pass's first
    batch: after ``set_epoch``, also for persistent workers (paddle builds a new sampler
    iterator at each pass), so every sample carries the epoch that pass belongs to.
    """

    key_seed: int = 0
    key_rank: int = 0

    def set_key(self, seed: int, rank: int) -> None:
        """What, with the epoch and the index, each sample's augmentation randomness derives from."""
        self.key_seed, self.key_rank = int(seed), int(rank)

    def __iter__(self) -> Iterator[List[SampleKey]]:
        # read before the parent's generator shuffles with this epoch and advances it
        seed, rank, epoch = self.key_seed, self.key_rank, int(getattr(self, 'epoch', 0))
        for batch in super().__iter__():
            yield [SampleKey(i, seed, rank, epoch) for i in batch]


class KeyedDistributedBatchSampler(_KeyedBatches, paddle.io.DistributedBatchSampler):
    """``paddle.io.DistributedBatchSampler`` (shuffled from the epoch) yielding :class:`SampleKey` batches."""


class KeyedBatchSampler(_KeyedBatches, paddle.io.BatchSampler):
    """``paddle.io.BatchSampler`` yielding :class:`SampleKey` batches; the epoch changes only by ``set_epoch``."""

    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
