"""The prioritized path board (docs/reference.md §5, step 5): the best paths seen so far, with the
input slice and soft labels each one is matched and distilled against.

The slices live on the device (they are scored every iteration); checkpoints hold them as arrays."""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle

from ..models.search_space import CHOICES

__all__ = ['COSTS', 'BoardEntry', 'PrioritizedBoard']

COSTS = ('flops', 'latency')   # what "cheaper" means when a board admits a path


ArrayLike = Union[np.ndarray, paddle.Tensor]


def _device_copy(value: ArrayLike) -> paddle.Tensor:
    """A float32 tensor on the current device holding its own copy of ``value``."""
    if isinstance(value, paddle.Tensor):
        return value.detach().astype('float32').clone()
    return paddle.to_tensor(np.asarray(value, dtype=np.float32))


@dataclass
class BoardEntry:
    """One prioritized path: its batch top-1 (percent), MFLOPs, the path, the first SLICE
    inputs of its batch ``(SLICE, C, H, W)`` and their soft labels ``(SLICE, num_classes)``, float32
    tensors on the device, and its predicted latency (ms; None without a latency table)."""
    top1: float
    flops: float
    path: List[List[int]]
    inputs: paddle.Tensor
    soft_labels: paddle.Tensor
    latency: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict with the slices as numpy arrays (for checkpoints)."""
        return {'top1': self.top1, 'flops': self.flops, 'latency': self.latency, 'path': [list(s) for s in self.path],
                'inputs': np.array(self.inputs.numpy(), dtype=np.float32),
                'soft_labels': np.array(self.soft_labels.numpy(), dtype=np.float32)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> 'BoardEntry':
        latency = d.get('latency')   # absent from checkpoints older than latency budgets
        return cls(top1=float(d['top1']), flops=float(d['flops']), path=[list(map(int, s)) for s in d['path']],
                   inputs=_device_copy(d['inputs']), soft_labels=_device_copy(d['soft_labels']),
                   latency=None if latency is None else float(latency))


class PrioritizedBoard:
    """At most ``pool_size`` paths sorted by top-1, best first (ties keep arrival order).

    A path is admitted while the board is not full, or when its top-1 beats the worst entry's
    by more than ``acc_gap`` points, or beats it (strictly) at a strictly lower cost: fewer FLOPs
    (``cost='flops'``) or a lower predicted latency (``cost='latency'``, a search under a latency
    budget: every path then comes with its latency); the worst entry is then evicted.
    """

    def __init__(self, pool_size: int, acc_gap: float = 5.0, cost: str = 'flops'):
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise ValueError(f'pool_size must be a positive integer, got {pool_size!r}')
        if cost not in COSTS:
            raise ValueError(f'cost must be one of {COSTS}, got {cost!r}')
        self.pool_size = pool_size
        self.acc_gap = float(acc_gap)
        self.cost = cost
        self._entries: List[BoardEntry] = []
        self._stacked: Optional[Tuple[paddle.Tensor, paddle.Tensor]] = None

    @property
    def entries(self) -> List[BoardEntry]:
        """The entries, best first (a copy of the list; the entries themselves are shared)."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def is_empty(self) -> bool:
        return not self._entries

    def best(self) -> BoardEntry:
        """The highest top-1 entry (``IndexError`` when empty)."""
        if not self._entries:
            raise IndexError('the prioritized board is empty')
        return self._entries[0]

    def worst(self) -> BoardEntry:
        """The lowest top-1 entry, the next to be evicted (``IndexError`` when empty)."""
        if not self._entries:
            raise IndexError('the prioritized board is empty')
        return self._entries[-1]

    def _cost(self, flops: float, latency: Optional[float]) -> float:
        if self.cost == 'flops':
            return flops
        if latency is None:
            raise ValueError("a board with cost 'latency' needs every path's latency")
        return latency

    def would_admit(self, top1: float, flops: float, latency: Optional[float] = None) -> bool:
        """Whether :meth:`admit` would add a path with this top-1, FLOPs and latency (ms)."""
        cost = self._cost(flops, latency)
        if len(self._entries) < self.pool_size:
            return True
        worst = self._entries[-1]
        return top1 > worst.top1 + self.acc_gap or (top1 > worst.top1 and cost < self._cost(worst.flops,
                                                                                             worst.latency))

    def admit(self, top1: float, flops: float, path: Sequence[Sequence[int]], inputs: ArrayLike,
              soft_labels: ArrayLike, latency: Optional[float] = None) -> bool:
        """Add the path if it qualifies (copying the slices to the device); True when it was added."""
        if len(inputs.shape) != 4 or len(soft_labels.shape) != 2 or inputs.shape[0] != soft_labels.shape[0]:
            raise ValueError(f'expected inputs (SLICE, C, H, W) and soft labels (SLICE, classes), got '
                             f'{list(inputs.shape)} and {list(soft_labels.shape)}')
        top1, flops = float(top1), float(flops)
        latency = None if latency is None else float(latency)
        if not self.would_admit(top1, flops, latency):
            return False
        entry = BoardEntry(top1, flops, [list(map(int, s)) for s in path], _device_copy(inputs),
                           _device_copy(soft_labels), latency)
        # list.sort is stable: among equal top-1, earlier entries stay first
        self._entries = sorted(self._entries + [entry], key=lambda e: -e.top1)[:self.pool_size]
        self._stacked = None
        return True

    def stacked(self) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """``(inputs [P * SLICE, ...], soft labels [P * SLICE, classes])`` of all entries, best first, on the
        device; built once per change of the board."""
        if not self._entries:
            raise IndexError('the prioritized board is empty')
        if self._stacked is None:
            self._stacked = (paddle.concat([e.inputs for e in self._entries]),
                             paddle.concat([e.soft_labels for e in self._entries]))
        return self._stacked

    def choice_frequencies(self, num_choices: int = len(CHOICES)) -> np.ndarray:
        """Relative frequency of each choice over the searched layers (stages 1..-2) of all
        entries (sums to 1); uniform when the board is empty."""
        counts = np.zeros(num_choices, dtype=np.float64)
        for entry in self._entries:
            for stage in entry.path[1:-1]:
                np.add.at(counts, np.asarray(stage, dtype=np.int64), 1.)
        if counts.sum() == 0:
            return np.full(num_choices, 1. / num_choices)
        return counts / counts.sum()

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to rebuild the board exactly (numpy arrays, plain Python values)."""
        return {'pool_size': self.pool_size, 'acc_gap': self.acc_gap, 'cost': self.cost,
                'entries': [e.to_dict() for e in self._entries]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Replace the board's contents (and pool size / gap / cost) by ``state``."""
        pool_size = int(state.get('pool_size', self.pool_size))
        entries = [BoardEntry.from_dict(d) for d in state['entries']]
        if len(entries) > pool_size:
            raise ValueError(f'state holds {len(entries)} entries, more than its pool size {pool_size}')
        cost = state.get('cost', self.cost)   # boards saved before latency budgets ranked by FLOPs
        if cost == 'latency' and any(e.latency is None for e in entries):
            raise ValueError("state of a board with cost 'latency' holds entries without a latency")
        self.pool_size = pool_size
        self.acc_gap = float(state.get('acc_gap', self.acc_gap))
        self.cost = cost
        self._entries = sorted(entries, key=lambda e: -e.top1)
        self._stacked = None

    def summary(self) -> List[Dict[str, Any]]:
        """JSON-able ranking, best first: ``{rank (from 1), top1, flops, latency (ms or None), arch}``; no arrays."""
        return [{'rank': i + 1, 'top1': e.top1, 'flops': e.flops, 'latency': e.latency,
                 'arch': [list(s) for s in e.path]}
                for i, e in enumerate(self._entries)]

    def __repr__(self) -> str:
        best: Optional[float] = self._entries[0].top1 if self._entries else None
        return (f'PrioritizedBoard(size={len(self)}/{self.pool_size}, acc_gap={self.acc_gap}, cost={self.cost}, '
                f'best_top1={best})')
