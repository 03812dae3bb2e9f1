"""Linear decay to ``lr_min`` with warmup and noise (Cream's supernet schedule)."""
from typing import List, Union

from .scheduler import NoiseRange, Optimizers, Scheduler

__all__ = ['LinearLRScheduler']


class LinearLRScheduler(Scheduler):
    """``lr = lr_min + (base - lr_min) * (1 - t / t_initial)``, then ``lr_min`` from ``t_initial`` on.

    Cream's search schedule is ``LinearLRScheduler(opt, t_initial=epochs * updates_per_epoch,
    t_in_epochs=False)`` stepped with ``step_update``: every group goes linearly from its base lr to 0
    over all iterations. Equals timm's ``PolyLRScheduler`` with ``power=1``.
    """

    def __init__(self, optimizer: Optimizers, t_initial: int, lr_min: float = 0., warmup_t: int = 0,
                 warmup_lr_init: float = 0., warmup_prefix: bool = False, t_in_epochs: bool = True,
                 noise_range_t: NoiseRange = None, noise_pct: float = 0.67, noise_std: float = 1.0,
                 noise_seed: int = 42, initialize: bool = True) -> None:
        super().__init__(optimizer, t_in_epochs=t_in_epochs, noise_range_t=noise_range_t, noise_pct=noise_pct,
                         noise_std=noise_std, noise_seed=noise_seed, initialize=initialize)
        if t_initial <= 0 or lr_min < 0:
            raise ValueError(f'need t_initial > 0 and lr_min >= 0, got {t_initial} and {lr_min}')
        self.t_initial = t_initial
        self.lr_min = lr_min
        self._setup_warmup(warmup_t, warmup_lr_init, warmup_prefix)

    def _decayed_lrs(self, t: Union[int, float]) -> List[float]:
        if t >= self.t_initial:
            return [self.lr_min for _ in self.base_values]
        remaining = 1 - t / self.t_initial
        return [self.lr_min + (v - self.lr_min) * remaining for v in self.base_values]

    def get_cycle_length(self, cycles: int = 0) -> int:
        """The schedule length, plus the warmup when it is a prefix (``cycles`` is ignored: one cycle)."""
        return self.t_initial + self.warmup_t if self.warmup_prefix else self.t_initial
