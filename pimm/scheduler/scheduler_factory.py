"""``create_scheduler``: timm's ``create_scheduler_v2`` for the step, cosine and linear schedules."""
from typing import Sequence, Tuple, Union

from .cosine_lr import CosineLRScheduler
from .linear_lr import LinearLRScheduler
from .scheduler import NoiseRange, Optimizers, Scheduler
from .step_lr import StepLRScheduler

__all__ = ['create_scheduler', 'SCHEDULERS']

SCHEDULERS = ('step', 'cosine', 'linear')


def _noise_range(lr_noise: Union[float, Sequence[float], None], t_initial: float) -> NoiseRange:
    """Noise on/off points given as fractions of the schedule, in scheduler time."""
    if lr_noise is None:
        return None
    if isinstance(lr_noise, (list, tuple)):
        points = [n * t_initial for n in lr_noise]
        return points[0] if len(points) == 1 else points
    return lr_noise * t_initial


def create_scheduler(optimizer: Optimizers, sched: str = 'cosine', epochs: int = 300, decay_epochs: float = 90,
                     decay_rate: float = 0.1, warmup_epochs: int = 0, warmup_lr: float = 1e-5, min_lr: float = 0.,
                     cooldown_epochs: int = 0, lr_noise: Union[float, Sequence[float], None] = None,
                     lr_noise_pct: float = 0.67, lr_noise_std: float = 1., seed: int = 42,
                     warmup_prefix: bool = False, cycle_mul: float = 1., cycle_decay: float = 0.1,
                     cycle_limit: int = 1, k_decay: float = 1.0, updates_per_epoch: int = 0,
                     step_on_epochs: bool = True) -> Tuple[Scheduler, int]:
    """A scheduler by name (``step``, ``cosine``, ``linear``) and the number of epochs to train.

    With ``step_on_epochs=False`` every length is converted to optimizer updates (``updates_per_epoch``
    per epoch) and the scheduler must be driven with ``step_update``. As in timm, the epoch count adds
    the cooldown (and a prefix warmup) for the cosine and linear schedules, only a prefix warmup for step.
    """
    if sched not in SCHEDULERS:
        raise ValueError(f"unknown scheduler '{sched}'; valid choices: {', '.join(SCHEDULERS)}")
    t_initial, warmup_t, decay_t, cooldown_t = epochs, warmup_epochs, decay_epochs, cooldown_epochs
    if not step_on_epochs:
        if updates_per_epoch <= 0:
            raise ValueError('updates_per_epoch must be > 0 when step_on_epochs=False')
        t_initial, warmup_t = t_initial * updates_per_epoch, warmup_t * updates_per_epoch
        decay_t, cooldown_t = decay_t * updates_per_epoch, cooldown_t * updates_per_epoch
    common = dict(warmup_lr_init=warmup_lr, warmup_t=warmup_t, warmup_prefix=warmup_prefix,
                  t_in_epochs=step_on_epochs, noise_range_t=_noise_range(lr_noise, t_initial),
                  noise_pct=lr_noise_pct, noise_std=lr_noise_std, noise_seed=seed)
    if sched == 'step':
        scheduler = StepLRScheduler(optimizer, decay_t=decay_t, decay_rate=decay_rate, **common)
        return scheduler, epochs + warmup_epochs if warmup_prefix else epochs
    if sched == 'cosine':
        scheduler = CosineLRScheduler(optimizer, t_initial=t_initial, lr_min=min_lr, cycle_mul=cycle_mul,
                                      cycle_decay=cycle_decay, cycle_limit=cycle_limit, k_decay=k_decay, **common)
    else:
        scheduler = LinearLRScheduler(optimizer, t_initial=t_initial, lr_min=min_lr, **common)
    total_t = scheduler.get_cycle_length() + cooldown_t
    return scheduler, total_t if step_on_epochs else total_t // updates_per_epoch
