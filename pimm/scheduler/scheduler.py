"""The scheduler base class (timm's ``Scheduler`` semantics) and the lr-noise random generator."""
import math
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle

__all__ = ['Scheduler', 'TorchCpuGenerator']

NoiseRange = Union[List[float], Tuple[float, float], float, None]
Optimizers = Union[paddle.optimizer.Optimizer, Sequence[paddle.optimizer.Optimizer]]


class TorchCpuGenerator:
    """PyTorch's CPU generator (MT19937) for scalar draws, so lr noise matches timm without torch.

    ``TorchCpuGenerator(seed).randn()`` equals ``torch.Generator().manual_seed(seed)`` then
    ``torch.randn(1, generator=g).item()`` (Box-Muller on 53-bit uniforms, the second value cached,
    rounded to float32); ``rand()`` equals ``torch.rand(1, generator=g).item()``.
    """

    def __init__(self, seed: int) -> None:
        value = int(seed) & 0xffffffff
        state = [value]
        for i in range(1, 624):
            value = (1812433253 * (value ^ (value >> 30)) + i) & 0xffffffff
            state.append(value)
        self._state, self._index, self._cached_normal = state, 624, None

    def _twist(self) -> None:
        s = self._state
        for i in range(624):
            y = (s[i] & 0x80000000) | (s[(i + 1) % 624] & 0x7fffffff)
            s[i] = s[(i + 397) % 624] ^ (y >> 1) ^ (0x9908b0df if y & 1 else 0)
        self._index = 0

    def next_uint32(self) -> int:
        """The next raw 32-bit output."""
        if self._index >= 624:
            self._twist()
        y = self._state[self._index]
        self._index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c5680
        y ^= (y << 15) & 0xefc60000
        return y ^ (y >> 18)

    def _uniform53(self) -> float:
        high, low = self.next_uint32(), self.next_uint32()
        return (((high << 32) | low) & ((1 << 53) - 1)) * 2.0 ** -53

    def randn(self) -> float:
        """A standard normal sample, as ``torch.randn(1)`` (float32) gives it."""
        if self._cached_normal is not None:
            value, self._cached_normal = self._cached_normal, None
        else:
            u1, u2 = self._uniform53(), self._uniform53()
            radius = math.sqrt(-2.0 * math.log1p(-u2))
            theta = 2.0 * math.pi * u1
            self._cached_normal = radius * math.sin(theta)
            value = radius * math.cos(theta)
        return float(np.float32(value))

    def rand(self) -> float:
        """A uniform sample in [0, 1), as ``torch.rand(1)`` gives it."""
        return (self.next_uint32() & ((1 << 24) - 1)) * 2.0 ** -24


def _lr_slots(optimizers: Sequence[paddle.optimizer.Optimizer]) -> List[Tuple[Any, Optional[Dict[str, Any]]]]:
    """(optimizer, group) for every parameter group that has an ``lr``; (optimizer, None) for an
    optimizer without such groups (a Paddle built-in), driven through ``get_lr``/``set_lr``."""
    slots = []
    for opt in optimizers:
        groups = getattr(opt, 'param_groups', None)
        if isinstance(groups, list) and groups and all(isinstance(g, dict) and 'lr' in g for g in groups):
            slots.extend((opt, g) for g in groups)
        else:
            slots.append((opt, None))
    return slots


class Scheduler(ABC):
    """Learning-rate scheduler base with timm's conventions.

    Call ``step(epoch)`` at the end of each epoch and ``step_update(num_updates)`` after each optimizer
    update, passing the count explicitly; only the one matching ``t_in_epochs`` changes the lr. Every
    parameter group (of one optimizer or of a list of them) is scheduled from its own base lr, kept in
    the group as ``initial_lr``; a group's ``lr_scale`` multiplies its lr. Noise multiplies the lr by
    ``1 + n`` inside ``noise_range_t``, n drawn as timm does from ``noise_seed + t``.
    """

    def __init__(self, optimizer: Optimizers, t_in_epochs: bool = True, noise_range_t: NoiseRange = None,
                 noise_type: str = 'normal', noise_pct: float = 0.67, noise_std: float = 1.0,
                 noise_seed: Optional[int] = None, initialize: bool = True) -> None:
        if noise_type not in ('normal', 'uniform'):
            raise ValueError(f"unknown noise_type '{noise_type}'; valid choices: normal, uniform")
        self.optimizer = optimizer
        optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
        self._slots = _lr_slots(optimizers)
        self.base_values = [self._initial_lr(opt, group, initialize) for opt, group in self._slots]
        self.metric = None
        self.t_in_epochs = t_in_epochs
        self.noise_range_t = noise_range_t
        self.noise_type = noise_type
        self.noise_pct = noise_pct
        self.noise_std = noise_std
        self.noise_seed = noise_seed if noise_seed is not None else 42
        self.update_groups(self.base_values)

    @staticmethod
    def _initial_lr(opt: Any, group: Optional[Dict[str, Any]], initialize: bool) -> float:
        if group is None:
            return float(opt.get_lr())
        if initialize:
            group.setdefault('initial_lr', group['lr'])
        elif 'initial_lr' not in group:
            raise KeyError('initial_lr missing from a parameter group (initialize=False)')
        return group['initial_lr']

    def state_dict(self) -> Dict[str, Any]:
        """Everything but the optimizers."""
        return {k: v for k, v in self.__dict__.items() if k not in ('optimizer', '_slots')}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.__dict__.update({k: v for k, v in state_dict.items() if k not in ('optimizer', '_slots')})

    set_state_dict = load_state_dict

    def _get_lr(self, t: Union[int, float]) -> List[float]:
        """The lr of every slot at time ``t``: the warmup, then the decay (from the warmup's end with
        ``warmup_prefix``)."""
        if t < self.warmup_t:
            return self._warmup_lrs(t)
        return self._decayed_lrs(t - self.warmup_t if self.warmup_prefix else t)

    @abstractmethod
    def _decayed_lrs(self, t: Union[int, float]) -> List[float]:
        """The lr of every slot at time ``t`` of the decay (warmup excluded)."""

    def _get_values(self, t: Union[int, float], on_epoch: bool = True) -> Optional[List[float]]:
        return self._get_lr(t) if on_epoch == self.t_in_epochs else None

    def step(self, epoch: int, metric: Optional[float] = None) -> None:
        """End of epoch ``epoch``: set the lr for the next one (epoch-based schedules only)."""
        self.metric = metric
        values = self._get_values(epoch, on_epoch=True)
        if values is not None:
            self.update_groups(self._add_noise(values, epoch))

    def step_update(self, num_updates: int, metric: Optional[float] = None) -> None:
        """After update ``num_updates``: set the lr for the next one (step-based schedules only)."""
        self.metric = metric
        values = self._get_values(num_updates, on_epoch=False)
        if values is not None:
            self.update_groups(self._add_noise(values, num_updates))

    def update_groups(self, values: Union[float, Sequence[float]]) -> None:
        """Set the lr of every slot (one value for all, or one per slot)."""
        if not isinstance(values, (list, tuple)):
            values = [values] * len(self._slots)
        for (opt, group), value in zip(self._slots, values):
            if group is None:
                opt.set_lr(float(value))
            else:
                group['lr'] = value * group['lr_scale'] if 'lr_scale' in group else value

    def get_lrs(self) -> List[float]:
        """The current lr of every slot."""
        return [float(opt.get_lr()) if group is None else group['lr'] for opt, group in self._slots]

    def _add_noise(self, lrs: List[float], t: Union[int, float]) -> List[float]:
        if self._is_apply_noise(t):
            noise = self._calculate_noise(t)
            lrs = [v + v * noise for v in lrs]
        return lrs

    def _is_apply_noise(self, t: Union[int, float]) -> bool:
        if self.noise_range_t is None:
            return False
        if isinstance(self.noise_range_t, (list, tuple)):
            return self.noise_range_t[0] <= t < self.noise_range_t[1]
        return t >= self.noise_range_t

    def _calculate_noise(self, t: Union[int, float]) -> float:
        rng = TorchCpuGenerator(self.noise_seed + t)
        if self.noise_type == 'uniform':
            return 2 * (rng.rand() - 0.5) * self.noise_pct
        while True:  # resample until within the limit, as timm does
            noise = rng.randn() * self.noise_std
            if abs(noise) < self.noise_pct:
                return noise

    def _setup_warmup(self, warmup_t: Union[int, float], warmup_lr_init: float, warmup_prefix: bool) -> None:
        """Linear warmup from ``warmup_lr_init`` to each base lr over ``warmup_t``; starts at ``warmup_lr_init``.
        ``warmup_prefix``: the decay's clock starts when the warmup ends."""
        self.warmup_prefix = warmup_prefix
        self.warmup_t = warmup_t
        self.warmup_lr_init = warmup_lr_init
        if warmup_t:
            self.warmup_steps = [(v - warmup_lr_init) / warmup_t for v in self.base_values]
            self.update_groups(warmup_lr_init)
        else:
            self.warmup_steps = [1 for _ in self.base_values]

    def _warmup_lrs(self, t: Union[int, float]) -> List[float]:
        return [self.warmup_lr_init + t * s for s in self.warmup_steps]
