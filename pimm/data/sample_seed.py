"""Per-sample augmentation randomness: a function of (loader seed, rank, epoch, sample index) only.

The transforms draw from the global ``random`` and ``numpy.random`` state (as timm's do).
A loader worker's global state depends on which worker loads a sample, on how many
samples that worker loaded before (persistent workers carry it across epochs) and on
paddle's per-iterator base seed, so a resumed run or another ``num_workers`` would augment
differently. Instead, the batch samplers of ``create_loader`` yield :class:`SampleKey`
indices (ints that also carry seed, rank and epoch), and the dataset runs the load and the
transform of each sample inside :func:`sample_rng`, which reseeds both generators from
``SeedSequence([seed, rank, epoch, index])`` and restores the caller's state afterwards.

The key travels with the index through paddle's index queues, so this holds for worker
processes (persistent or not) and for in-process loading alike.
"""
import random
from contextlib import contextmanager
from typing import Iterator, Tuple

import numpy as np
from paddle.io import get_worker_info

__all__ = ['SampleKey', 'sample_rng', 'sample_seed_words']


class SampleKey(int):
    """A dataset index (it *is* the int) that also names the randomness its sample is augmented with."""

    def __new__(cls, index: int, seed: int = 0, rank: int = 0, epoch: int = 0) -> 'SampleKey':
        key = super().__new__(cls, index)
        key.seed, key.rank, key.epoch = int(seed), int(rank), int(epoch)
        return key

    def __reduce__(self):  # sent to worker processes through paddle's index queues
        return type(self), (int(self), self.seed, self.rank, self.epoch)

    def __repr__(self) -> str:
        return f'SampleKey({int(self)}, seed={self.seed}, rank={self.rank}, epoch={self.epoch})'


def sample_seed_words(key: SampleKey) -> Tuple[int, np.ndarray]:
    """(seed for ``random.seed``, uint32 words for ``np.random.seed``) of one sample."""
    words = np.random.SeedSequence([key.seed, key.rank, key.epoch, int(key)]).generate_state(8, np.uint32)
    return int.from_bytes(words[:4].tobytes(), 'little'), words[4:]


@contextmanager
def sample_rng(index) -> Iterator[None]:
    """Run the body with ``random`` and ``numpy.random`` seeded for ``index`` (a :class:`SampleKey`).

    Outside loader workers (``num_workers=0``) the caller's generator states are restored on
    exit, so loading does not disturb the training loop's own draws; a worker's states are
    not (saving numpy's costs ~0.1 ms a sample, and nothing else in a worker draws). A plain
    int index leaves the generators as they are.
    """
    if not isinstance(index, SampleKey):
        yield
        return
    saved = (random.getstate(), np.random.get_state()) if get_worker_info() is None else None
    python_seed, numpy_words = sample_seed_words(index)
    random.seed(python_seed)
    np.random.seed(numpy_words)
    try:
        yield
    finally:
        if saved is not None:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
