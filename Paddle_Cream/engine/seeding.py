"""Seeds and RNG states: every epoch starts from (SEED, epoch), so a resumed run repeats an
uninterrupted one exactly (same paths, same shuffles, same augmentations, same dropout)."""
import random

import numpy as np
import paddle

__all__ = ['seed_everything', 'epoch_seed']


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 100003 + epoch * 7919) % (2 ** 31)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and Paddle (every rank alike, so they sample the same paths)."""
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)
