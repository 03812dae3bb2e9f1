"""Exponential moving average of a model's weights (timm's ``ModelEmaV2`` semantics).

``ema = decay * ema + (1 - decay) * model`` after every step, for every state entry, parameters and
buffers alike (BN running statistics included). With :class:`~pimm.utils.fused_storage.FusedUnits` it is
lazy and exact for a supernet: a unit that a step did not change is not touched; when it is touched
again, the ``L`` skipped steps (each moving it towards the same, unchanged weights) are applied at once,
``ema += (1 - decay**L) * (model - ema)``, before the step changes the weights (:meth:`ModelEma.catch_up`).
"""
import copy
from typing import Any, Dict, List, Mapping, Optional, Sequence

import paddle
import paddle.nn as nn
from paddle import _C_ops

from .fused_storage import FusedUnits, assign_in_place, share_buffer

__all__ = ['ModelEma', 'unwrap_model']


def unwrap_model(model: nn.Layer) -> nn.Layer:
    """The layer inside a ``paddle.DataParallel`` wrapper (the model itself otherwise)."""
    return model._layers if isinstance(model, paddle.DataParallel) else model


class ModelEma:
    """A deep copy of ``model`` in eval mode averaging its state (``ModelEma(x)(input)`` runs it).

    Entries are matched by position as in timm's ``ModelEmaV2``; non-float entries are copied. ``device``
    (e.g. ``'cpu'``) keeps the copy there, also after :meth:`set_state_dict`. The copy tracks no gradients.

    ``fused``: the model's :class:`FusedUnits`. Then the average lives in one flat buffer per unit (the
    copy's tensors are views of them) and :meth:`update` takes the units a step changed.
    """

    def __init__(self, model: nn.Layer, decay: float = 0.9998, device: Optional[str] = None,
                 fused: Optional[FusedUnits] = None) -> None:
        if not 0. <= float(decay) <= 1.:
            raise ValueError(f'EMA decay must be in [0, 1], got {decay!r}')
        model = unwrap_model(model)
        self._module = copy.deepcopy(model)
        self._module.eval()
        for param in self._module.parameters():
            param.stop_gradient = True
        self.decay = float(decay)
        self.device = device
        if device is not None:
            self._module.to(device=device)
        self._weights: Dict[float, paddle.Tensor] = {}
        self.fused = fused
        self.num_updates = 0
        if fused is None:
            self._pairs = self._tensor_pairs(model)
            return
        state = list(model.state_dict().items())
        outside = [k for k, t in state if not fused.holds(t)]
        if outside:
            raise ValueError(f'{len(outside)} state entries are in no fused unit (e.g. {outside[0]}); the units '
                             f'must cover the model')
        position = {id(t): i for i, (_, t) in enumerate(state)}
        mine = list(self._module.state_dict().values())
        self._flat: List[paddle.Tensor] = []
        for values, tensors, offsets in zip(fused.values, fused.tensors, fused.offsets):
            flat = values.detach().clone() if device is None else values.detach().cpu()
            share_buffer(flat, [mine[position[id(t)]] for t in tensors], offsets)
            self._flat.append(flat)
        self._last = [0] * len(fused)   # the update count each unit's average is current at
        self._flat_here = device is None

    @property
    def module(self) -> nn.Layer:
        """The averaged copy, every unit brought current."""
        self.catch_up()
        return self._module

    def _tensor_pairs(self, model: nn.Layer) -> List[tuple]:
        ema_state, model_state = self._module.state_dict(), model.state_dict()
        if len(ema_state) != len(model_state):
            raise ValueError(f'model has {len(model_state)} state entries, the EMA copy {len(ema_state)}')
        return list(zip(ema_state.values(), model_state.values()))

    def _weight(self, w: float, dtype, place) -> paddle.Tensor:
        # lerp_ takes its weight as a tensor; built without a host-to-device copy and kept per value
        key = (w, dtype, str(place))
        if key not in self._weights:
            if len(self._weights) > 256:
                self._weights.clear()
            with paddle.no_grad():
                self._weights[key] = paddle.full([1], w, dtype=dtype).to(place)
        return self._weights[key]

    def _toward(self, ema: paddle.Tensor, target: paddle.Tensor, w: float) -> None:
        """``ema += w * (target - ema)`` in place (a copy for non-float entries)."""
        if target.place != ema.place:
            target = target.to(ema.place)
        if not ema.is_floating_point():
            ema.copy_(target, False)
        elif w == 1.:
            ema.copy_(target.astype(ema.dtype), False)
        elif w > 0.:
            _C_ops.lerp_(ema, target.astype(ema.dtype), self._weight(w, ema.dtype, ema.place))

    def _flat_weight(self, w: float) -> paddle.Tensor:
        flat = self._flat[0]
        return self._weight(w, flat.dtype, flat.place)

    def _flat_source(self, u: int) -> paddle.Tensor:
        values = self.fused.values[u]
        return values if self._flat_here else values.to(self._flat[u].place)  # FORCE_CPU: one copy a unit

    @paddle.no_grad()
    def catch_up(self, units: Optional[Sequence[int]] = None) -> None:
        """Bring the average of ``units`` (all when None) up to the last update, assuming their weights did
        not change since they were last averaged. Call it before a step changes a unit it skipped."""
        if self.fused is None:
            return
        now, last = self.num_updates, self._last
        for u in range(len(self._flat)) if units is None else units:
            lag = now - last[u]
            if lag > 0:   # L skipped steps towards unchanged weights: one step of weight 1 - decay**L
                _C_ops.lerp_(self._flat[u], self._flat_source(u), self._flat_weight(1. - self.decay ** lag))
                last[u] = now

    @paddle.no_grad()
    def update(self, model: nn.Layer, units: Optional[Sequence[int]] = None) -> None:
        """One EMA step towards ``model`` (plain or ``DataParallel``). With ``fused``, ``units`` are the units
        this step changed (all when None); :meth:`catch_up` must have run for them before the change."""
        w = 1. - self.decay
        self.num_updates += 1
        if self.fused is None:
            for ema_v, model_v in self._pairs:
                self._toward(ema_v, model_v, w)
            return
        now, last, weight = self.num_updates, self._last, self._flat_weight(w)
        for u in range(len(self._flat)) if units is None else units:
            if last[u] != now - 1:
                raise RuntimeError(f'EMA unit {u} was changed without catch_up() first')
            _C_ops.lerp_(self._flat[u], self._flat_source(u), weight)
            last[u] = now

    @paddle.no_grad()
    def set(self, model: nn.Layer) -> None:
        """Copy ``model``'s state into the EMA."""
        if self.fused is not None:
            for flat, values in zip(self._flat, self.fused.values):
                self._toward(flat, values, 1.)
            self._last = [self.num_updates] * len(self._flat)
            return
        for ema_v, model_v in self._pairs:
            self._toward(ema_v, model_v, 1.)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def state_dict(self) -> Dict[str, paddle.Tensor]:
        """The averaged weights (every unit brought current), keyed like the model's own state dict."""
        return self.module.state_dict()

    def set_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load averaged weights (tensors or numpy arrays) into the copy's own memory, on its own device;
        the keys must be exactly the model's."""
        expected = self._module.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if missing or unexpected:
            raise KeyError(f'EMA state does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}')
        for key, tensor in expected.items():
            assign_in_place(tensor, state_dict[key])
        if self.fused is not None:
            self._last = [self.num_updates] * len(self._flat)
