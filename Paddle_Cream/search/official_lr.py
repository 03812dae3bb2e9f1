"""The official search's learning-rate rule (``SUPERNET.LR_RULE squared``).

The official code steps ``LambdaLR(optimizer, lambda t: LR - t / T if t <= T else 0)`` every iteration, and
LambdaLR multiplies each group's base rate (``LR``) by that factor: ``lr(t) = LR * (LR - t / T)``. At the
paper's ``LR 1.0`` this is the linear decay to 0 the corrected rule runs; at another ``LR`` it starts at
``LR**2`` and, below 1, turns negative once ``t > LR * T`` (gradient ascent). ``T`` is the run's number of
updates here; the official code computed it from 1,280,000 images (ImageNet's count, rounded) whatever the
dataset.
"""
from typing import List, Union

from pimm.scheduler import LinearLRScheduler

__all__ = ['SquaredLinearLRScheduler']


class SquaredLinearLRScheduler(LinearLRScheduler):
    """Each group's base rate times ``lr - t / t_initial`` while ``t <= t_initial``, then 0; ``lr`` the
    configured ``LR``."""

    def __init__(self, optimizer, t_initial: int, lr: float, **kwargs) -> None:
        self.lr = float(lr)
        super().__init__(optimizer, t_initial=t_initial, **kwargs)

    def _decayed_lrs(self, t: Union[int, float]) -> List[float]:
        factor = self.lr - t / self.t_initial if t <= self.t_initial else 0.
        return [v * factor for v in self.base_values]
