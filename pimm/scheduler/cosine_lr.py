"""Cosine decay with warmup, restarts, k-decay and noise (timm's ``CosineLRScheduler``)."""
import math
from typing import List, Tuple, Union

from .scheduler import NoiseRange, Optimizers, Scheduler

__all__ = ['CosineLRScheduler']


class CosineLRScheduler(Scheduler):
    """SGDR cosine annealing: ``lr_min + (base * cycle_decay ** i - lr_min) * (1 + cos(pi * t_cur ** k /
    t_i ** k)) / 2`` in cycle ``i`` (length ``t_initial * cycle_mul ** i``), ``lr_min`` once
    ``cycle_limit`` cycles are done; linear warmup first.
    """

    def __init__(self, optimizer: Optimizers, t_initial: int, lr_min: float = 0., cycle_mul: float = 1.,
                 cycle_decay: float = 1., cycle_limit: int = 1, warmup_t: int = 0, warmup_lr_init: float = 0.,
                 warmup_prefix: bool = False, t_in_epochs: bool = True, noise_range_t: NoiseRange = None,
                 noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42, k_decay: float = 1.0,
                 initialize: bool = True) -> None:
        super().__init__(optimizer, t_in_epochs=t_in_epochs, noise_range_t=noise_range_t, noise_pct=noise_pct,
                         noise_std=noise_std, noise_seed=noise_seed, initialize=initialize)
        if t_initial <= 0 or lr_min < 0:
            raise ValueError(f'need t_initial > 0 and lr_min >= 0, got {t_initial} and {lr_min}')
        self.t_initial = t_initial
        self.lr_min = lr_min
        self.cycle_mul = cycle_mul
        self.cycle_decay = cycle_decay
        self.cycle_limit = cycle_limit
        self.k_decay = k_decay
        self._setup_warmup(warmup_t, warmup_lr_init, warmup_prefix)

    def _cycle(self, t: Union[int, float]) -> Tuple[int, float, float]:
        """(cycle index, cycle length, time within the cycle)."""
        if self.cycle_mul != 1:
            i = math.floor(math.log(1 - t / self.t_initial * (1 - self.cycle_mul), self.cycle_mul))
            t_i = self.cycle_mul ** i * self.t_initial
            return i, t_i, t - (1 - self.cycle_mul ** i) / (1 - self.cycle_mul) * self.t_initial
        i = t // self.t_initial
        return i, self.t_initial, t - self.t_initial * i

    def _decayed_lrs(self, t: Union[int, float]) -> List[float]:
        i, t_i, t_curr = self._cycle(t)
        if i >= self.cycle_limit:
            return [self.lr_min for _ in self.base_values]
        gamma, k = self.cycle_decay ** i, self.k_decay
        cosine = 1 + math.cos(math.pi * t_curr ** k / t_i ** k)
        return [self.lr_min + 0.5 * (v * gamma - self.lr_min) * cosine for v in self.base_values]

    def get_cycle_length(self, cycles: int = 0) -> int:
        """Length of ``cycles`` cycles (default ``cycle_limit``), plus the warmup when it is a prefix."""
        cycles = max(1, cycles or self.cycle_limit)
        if self.cycle_mul == 1.0:
            t = self.t_initial * cycles
        else:
            t = int(math.floor(-self.t_initial * (self.cycle_mul ** cycles - 1) / (1 - self.cycle_mul)))
        return t + self.warmup_t if self.warmup_prefix else t
