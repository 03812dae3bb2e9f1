"""Contiguous storage for a model's tensors, unit by unit, so per-step work costs one op per unit.

A weight-sharing supernet trains a different subset of its layers every step. Grouping the tensors
of each independently-sampled part (a *unit*: a choice block, the stem, the head) into one flat
buffer lets the step zero, all-reduce, optimize and average exactly the units it used with a
handful of ops instead of one (or three) per tensor. The model's own parameters and buffers
become views of the buffers (Paddle's tensor-fusion mechanism: ``_share_buffer_to``), so forward,
backward, BatchNorm statistics, ``state_dict`` and checkpoints are unchanged.

Gradients of trainable tensors are views of a second buffer per unit; backward accumulates into
them in place. ``clear_gradient`` would detach a gradient from it, so gradients are only ever
zeroed through :meth:`FusedUnits.zero_grads`; :meth:`FusedUnits.check` verifies every link.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

__all__ = ['FusedUnits', 'assign_in_place', 'share_buffer', 'fuse', 'aligned_offsets', 'ALIGN_ELEMENTS']


def assign_in_place(tensor: paddle.Tensor, value) -> None:
    """Write ``value`` (array or tensor) into ``tensor``'s own memory, on ``tensor``'s device.

    ``Tensor.set_value`` of an array allocates on the *current* device: a tensor kept elsewhere (an EMA
    held on the CPU while a GPU is current) would move there, and a view would leave its buffer."""
    with paddle.no_grad():
        if not isinstance(value, paddle.Tensor):
            value = paddle.to_tensor(np.asarray(value), dtype=tensor.dtype, place=tensor.place)
        elif value.dtype != tensor.dtype:
            value = value.astype(tensor.dtype)
        tensor.copy_(value.reshape(tensor.shape), False)


# each tensor starts on a 256-byte boundary, like Paddle's own allocations: CPU kernels pick their
# vectorised paths by alignment, and a misaligned view measured float32-rounding-different gradients
ALIGN_ELEMENTS = 64


def aligned_offsets(sizes: Sequence[int], align: int = ALIGN_ELEMENTS) -> Tuple[List[int], int]:
    """``(start of each of consecutive blocks of ``sizes``, total length)``, every start a multiple of ``align``."""
    offsets, end = [], 0
    for size in sizes:
        start = -(-end // align) * align
        offsets.append(start)
        end = start + int(size)
    return offsets, -(-end // align) * align


def share_buffer(buffer: paddle.Tensor, tensors: Sequence[paddle.Tensor], offsets: Sequence[int]) -> None:
    """Make each tensor a view of the flat ``buffer`` starting at its offset: from now on writing either one
    writes both. The tensors' own values are discarded (copy them in first to keep them)."""
    for t, start in zip(tensors, offsets):
        size = int(t.size)
        if start + size > int(buffer.size):
            raise ValueError(f'a tensor of {size} elements at {start} does not fit a buffer of {int(buffer.size)}')
        shape = list(t.shape)
        buffer._slice(start, start + size)._share_buffer_to(t)
        t.get_tensor()._set_dims(shape)


def fuse(tensors: Sequence[paddle.Tensor], offsets: Sequence[int], total: int) -> paddle.Tensor:
    """A zero-padded flat buffer holding ``tensors``' values at ``offsets``, the tensors made views of it."""
    with paddle.no_grad():
        buffer = paddle.zeros([total], dtype=tensors[0].dtype)
        for t, start in zip(tensors, offsets):
            buffer._slice(start, start + int(t.size)).copy_(t.reshape([-1]), False)
        share_buffer(buffer, tensors, offsets)
    return buffer


def _view(buffer: paddle.Tensor, start: int, shape: Sequence[int]) -> paddle.Tensor:
    """A tensor of ``shape`` over ``buffer[start:]`` (shares its memory)."""
    size = int(np.prod(shape)) if len(shape) else 1
    view = buffer._slice(start, start + size)
    view.get_tensor()._set_dims(list(shape))
    return view


class FusedUnits:
    """Every tensor of ``units`` (lists of layers; each tensor in exactly one unit) laid out in one flat
    buffer per unit: trainable parameters first, ordered by ``groups`` (e.g. the optimizer's
    no-decay and decay groups), then the other state (BN running statistics).

    ``values[u]`` and ``grads[u]`` are unit ``u``'s flat buffers (``grads`` cover its trainable part);
    :meth:`group_slices` gives ``(group index, values view, grads view)`` per non-empty group of a unit;
    ``tensors[u]`` and ``offsets[u]`` say where each tensor lives (zero padding keeps every start aligned).
    Built once, before optimizers and EMA copies read the tensors' storage.
    """

    def __init__(self, units: Sequence[Sequence[nn.Layer]], groups: Sequence[Sequence[paddle.Tensor]]) -> None:
        group_of = {id(p): g for g, params in enumerate(groups) for p in params}
        self.values: List[paddle.Tensor] = []
        self.grads: List[Optional[paddle.Tensor]] = []
        self.tensors: List[List[paddle.Tensor]] = []
        self.offsets: List[List[int]] = []
        self._slices: List[List[tuple]] = []
        self._unit_of: Dict[int, int] = {}
        for u, layers in enumerate(units):
            tensors = self._unit_tensors(layers)
            for t in tensors:
                if id(t) in self._unit_of:
                    raise ValueError(f'a tensor of shape {t.shape} belongs to units {self._unit_of[id(t)]} and {u}')
                self._unit_of[id(t)] = u
            trainable = [t for t in tensors if not t.stop_gradient]
            missing = [t for t in trainable if id(t) not in group_of]
            if missing:
                raise ValueError(f'unit {u} has {len(missing)} trainable tensor(s) in no group')
            trainable.sort(key=lambda t: group_of[id(t)])  # stable: the layers' order within a group
            frozen = [t for t in tensors if t.stop_gradient]
            self._link(trainable, frozen, [group_of[id(t)] for t in trainable])

    @staticmethod
    def _unit_tensors(layers: Sequence[nn.Layer]) -> List[paddle.Tensor]:
        seen, out = set(), []
        for layer in layers:
            for t in list(layer.parameters()) + list(layer.buffers()):
                if id(t) not in seen:
                    seen.add(id(t))
                    out.append(t)
        return out

    def _link(self, trainable: List[paddle.Tensor], frozen: List[paddle.Tensor], group_ids: List[int]) -> None:
        tensors = trainable + frozen
        if not tensors:
            raise ValueError('a unit without tensors')
        dtypes = {t.dtype for t in tensors}
        if len(dtypes) != 1:
            raise ValueError(f'a unit mixes dtypes {sorted(map(str, dtypes))}')
        offsets, total = aligned_offsets([int(t.size) for t in tensors])
        n_train = offsets[len(trainable)] if frozen else total  # the trainable prefix, padding included
        values = fuse(tensors, offsets, total)
        grads, slices = None, []
        if trainable:
            with paddle.no_grad():
                grads = paddle.zeros([n_train], dtype=tensors[0].dtype)
            for t, start in zip(trainable, offsets):
                t._copy_gradient_from(_view(grads, start, t.shape))
            firsts = [i for i, g in enumerate(group_ids) if i == 0 or group_ids[i - 1] != g]
            for k, i in enumerate(firsts):
                end = offsets[firsts[k + 1]] if k + 1 < len(firsts) else n_train
                slices.append((group_ids[i], values._slice(offsets[i], end), grads._slice(offsets[i], end)))
        self.values.append(values)
        self.grads.append(grads)
        self.tensors.append(tensors)
        self.offsets.append(offsets)
        self._slices.append(slices)

    def __len__(self) -> int:
        return len(self.values)

    def holds(self, tensor: paddle.Tensor) -> bool:
        """Whether ``tensor`` lives in one of the units."""
        return id(tensor) in self._unit_of

    def unit_of(self, tensor: paddle.Tensor) -> int:
        """The unit holding ``tensor`` (``KeyError`` for a tensor outside every unit)."""
        return self._unit_of[id(tensor)]

    def group_slices(self, unit: int) -> List[tuple]:
        """``[(group index, values view, grads view)]`` of unit ``unit``'s trainable tensors, per group."""
        return self._slices[unit]

    def zero_grads(self, units: Optional[Sequence[int]] = None) -> None:
        """Zero the gradients of ``units`` (all when None): one op per unit, links kept."""
        with paddle.no_grad():
            for u in range(len(self)) if units is None else units:
                if self.grads[u] is not None:
                    self.grads[u].zero_()

    def check(self) -> None:
        """``RuntimeError`` unless every tensor and gradient is still a view of its unit's buffers
        (a ``clear_gradient`` before a backward, or a tensor moved to another device, detaches it)."""
        for u, tensors in enumerate(self.tensors):
            for t in tensors:
                if not self.values[u]._is_shared_buffer_with(t):
                    raise RuntimeError(f'a tensor of unit {u} (shape {t.shape}) no longer lives in its fused buffer')
                if not t.stop_gradient and (t.grad is None or not self.grads[u]._is_shared_buffer_with(t.grad)):
                    raise RuntimeError(f'the gradient of a tensor of unit {u} (shape {t.shape}) was detached from '
                                       f'its fused buffer (clear_gradient?); zero gradients with zero_grads()')
