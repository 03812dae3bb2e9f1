"""SGD (momentum, Nesterov) stepping chosen units of :class:`~pimm.utils.fused_storage.FusedUnits` storage
with one multi-tensor op: the search's optimizer step, whose cost no longer grows with the supernet.

The update is ``torch.optim.SGD``'s (see :class:`pimm.optim.SGD`): ``g += wd * p; buf = momentum * buf + g;
p -= lr * (g + momentum * buf if nesterov else buf)``, with the buffer starting at zero (so the first
update sets it to ``g``, as PyTorch's first-step copy does). Paddle's ``merged_momentum`` kernel computes
exactly this over a list of tensors; each unit contributes one slice per parameter group. Units a step
does not name are not touched at all: no momentum, no weight decay.
"""
import contextlib
from typing import Any, Iterator, List, Mapping, Optional, Sequence

import paddle
from paddle import _C_ops

from pimm.utils.fused_storage import FusedUnits, assign_in_place, share_buffer

from .optim_factory import SGD
from .rmsprop_tf import ParamsT

__all__ = ['FusedSGD']


class FusedSGD(SGD):
    """:class:`SGD` over ``fused`` storage; ``step(units)`` updates exactly those units.

    ``params`` are the groups as for :class:`SGD` (their order defines ``state_dict`` indices, so
    checkpoints are interchangeable with :class:`SGD`'s); ``fused`` must have been built with the same
    groups. The momentum buffers live in one flat buffer per unit, viewed per parameter as
    ``state[index]['momentum_buffer']`` once the unit has been updated.
    """

    def __init__(self, params: ParamsT, fused: FusedUnits, lr: float = 1e-2, momentum: float = 0.,
                 weight_decay: float = 0., nesterov: bool = False) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        self.fused = fused
        outside = [p for g in self._param_groups for p in g['params'] if not fused.holds(p)]
        if outside:
            raise ValueError(f'{len(outside)} parameter(s) of the groups are in no unit of the fused storage '
                             f'(first of shape {outside[0].shape}): every unit\'s layers together must cover the model')
        index = {id(p): i for i, p in enumerate(p for g in self._param_groups for p in g['params'])}
        group_of = {id(p): g for g, group in enumerate(self._param_groups) for p in group['params']}
        self._velocity: List[Optional[paddle.Tensor]] = []
        self._slices: List[List[tuple]] = []
        self._indices: List[List[int]] = []
        self._views: List[List[paddle.Tensor]] = []
        for u in range(len(fused)):
            trainable = [t for t in fused.tensors[u] if not t.stop_gradient]
            if any(id(t) not in index for t in trainable):
                raise ValueError(f'unit {u} holds parameters that are in no group of this optimizer')
            grads = fused.grads[u]
            velocity = None if grads is None else paddle.zeros_like(grads)
            views = [paddle.zeros_like(t) for t in trainable]
            if velocity is not None:
                share_buffer(velocity, views, fused.offsets[u])
            order = [group_of[id(t)] for t in trainable]
            if order != sorted(order) or [g for g, _, _ in fused.group_slices(u)] != sorted(set(order)):
                raise ValueError(f'unit {u}: the fused storage was built with other parameter groups')
            slices, start = [], 0
            for g, values_view, grads_view in fused.group_slices(u):
                n = int(values_view.size)   # the group slices tile the trainable prefix in order
                slices.append((g, values_view, grads_view, velocity._slice(start, start + n)))
                start += n
            self._velocity.append(velocity)
            self._slices.append(slices)
            self._indices.append([index[id(t)] for t in trainable])
            self._views.append(views)
        self._restricted: Optional[Sequence[int]] = None
        self._updated = set()   # units whose momentum buffers state_dict() reports

    @contextlib.contextmanager
    def restricted_to(self, units: Sequence[int]) -> Iterator[None]:
        """Inside, :meth:`step` without arguments (as ``paddle.amp.GradScaler.step`` calls it) updates only
        ``units``."""
        previous, self._restricted = self._restricted, list(units)
        try:
            yield
        finally:
            self._restricted = previous

    def _units(self, units: Optional[Sequence[int]]) -> Sequence[int]:
        if units is not None:
            return units
        return range(len(self._slices)) if self._restricted is None else self._restricted

    def step_gradients(self) -> List[paddle.Tensor]:
        """The flat gradients :meth:`step` without ``units`` updates (one per unit): what a loss scaler unscales
        and checks."""
        return [self.fused.grads[u] for u in self._units(None) if self.fused.grads[u] is not None]

    @paddle.no_grad()
    def step(self, units: Optional[Sequence[int]] = None, skip: Optional[paddle.Tensor] = None) -> None:
        """Update ``units`` (when None: those of :meth:`restricted_to`, else every unit) from their fused
        gradients. ``skip``: a boolean tensor of one element, decided on the device (an AMP overflow); when
        True, weights and momentum stay bit for bit what they were, without a copy to the host. The gradients
        must then be finite (:class:`pimm.utils.amp.GradScaler` zeroes an overflowed step's)."""
        if skip is None and self._skip_for_inf():
            return
        units = self._units(units)
        groups = self._param_groups
        keep = None if skip is None else paddle.logical_not(skip.reshape([1]))
        lr = {}
        params, grads, velocities, lrs, methods, coeffs = [], [], [], [], [], []
        for u in units:
            for g, values, grad, velocity in self._slices[u]:
                if g not in lr:  # device scalars made by a fill kernel: no host-to-device copy
                    lr[g] = paddle.full([1], groups[g]['lr'], dtype=values.dtype)
                    if keep is not None:   # a skipped step moves no weight: learning rate 0
                        lr[g] = lr[g] * keep.astype(values.dtype)
                params.append(values)
                grads.append(grad)
                velocities.append(velocity)
                lrs.append(lr[g])
                coeffs.append(float(groups[g]['weight_decay']))
                methods.append('l2_decay' if coeffs[-1] else '')
            if u not in self._updated:
                self._mark_updated(u)
        if not params:
            return
        momentum = {float(groups[g]['momentum']) for g in lr}
        nesterov = {bool(groups[g]['nesterov']) for g in lr}
        if len(momentum) != 1 or len(nesterov) != 1:
            raise ValueError('FusedSGD needs the same momentum and nesterov in every group')
        mu = momentum.pop()
        # a skipped step's momentum buffers are put back (weight decay and momentum would still move them)
        saved = []
        if keep is not None and mu:
            saved = [(v, v.clone()) for v in (self._velocity[u] for u in units) if v is not None]
        _C_ops.merged_momentum_(params, grads, velocities, lrs, None, mu, nesterov.pop(), methods, coeffs, False, 1.0)
        for velocity, before in saved:   # the C op: paddle.where_'s Python broadcasting costs 4x more on the host
            _C_ops.where_(_C_ops.expand(keep, velocity.shape), velocity, before)

    def _mark_updated(self, unit: int) -> None:
        self._updated.add(unit)
        if not self.defaults['momentum']:
            return  # as SGD: no buffer without momentum
        for i, view in zip(self._indices[unit], self._views[unit]):
            self.state.setdefault(i, {})['momentum_buffer'] = view

    def zero_grad(self, units: Optional[Sequence[int]] = None) -> None:
        """Zero the fused gradients of ``units`` (all when None), keeping them linked."""
        self.fused.zero_grads(units)

    def clear_grad(self, set_to_zero: bool = True) -> None:
        """Zero every fused gradient (detaching them, as ``clear_gradient`` does, would break the storage)."""
        self.fused.zero_grads()

    def set_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore an :class:`SGD`/:class:`FusedSGD` ``state_dict`` into the fused momentum buffers."""
        super().set_state_dict(state_dict)
        loaded, self.state = self.state, {}
        self._updated = set()
        for velocity in self._velocity:
            if velocity is not None:
                velocity.zero_()
        for u, (indices, views) in enumerate(zip(self._indices, self._views)):
            if any('momentum_buffer' in loaded.get(i, {}) for i in indices):
                for i, view in zip(indices, views):
                    if 'momentum_buffer' in loaded.get(i, {}):
                        assign_in_place(view, loaded[i]['momentum_buffer'])
                self._mark_updated(u)
