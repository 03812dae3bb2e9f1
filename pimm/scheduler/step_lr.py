"""Step decay with warmup and noise (timm's ``StepLRScheduler``)."""
from typing import List, Union

from .scheduler import NoiseRange, Optimizers, Scheduler

__all__ = ['StepLRScheduler']


class StepLRScheduler(Scheduler):
    """``lr = base * decay_rate ** (t // decay_t)`` after a linear warmup of ``warmup_t``.

    With ``warmup_prefix`` (the default, as in timm) ``t`` counts from the end of the warmup.
    """

    def __init__(self, optimizer: Optimizers, decay_t: float, decay_rate: float = 1., warmup_t: int = 0,
                 warmup_lr_init: float = 0., warmup_prefix: bool = True, t_in_epochs: bool = True,
                 noise_range_t: NoiseRange = None, noise_pct: float = 0.67, noise_std: float = 1.0,
                 noise_seed: int = 42, initialize: bool = True) -> None:
        super().__init__(optimizer, t_in_epochs=t_in_epochs, noise_range_t=noise_range_t, noise_pct=noise_pct,
                         noise_std=noise_std, noise_seed=noise_seed, initialize=initialize)
        if decay_t <= 0:
            raise ValueError(f'decay_t must be > 0, got {decay_t}')
        self.decay_t = decay_t
        self.decay_rate = decay_rate
        self._setup_warmup(warmup_t, warmup_lr_init, warmup_prefix)

    def _decayed_lrs(self, t: Union[int, float]) -> List[float]:
        return [v * (self.decay_rate ** (t // self.decay_t)) for v in self.base_values]
