"""``paddle.amp.GradScaler`` with its loss-scale state on the device: with an optimizer that can skip a step on
the device (:class:`~pimm.optim.FusedSGD`), a float16 step makes no device-to-host copy.

Why not Paddle 3.3's own: its ``_update`` decides on a host bool (the optimizer fetches ``found_inf``: one
synchronisation per iteration) and announces an overflow with ``float(self._scale)``, which NumPy 2.4 refuses
for a shape-[1] array (a TypeError at the first overflow, the step loss scaling exists for); and its
``_unscale`` walks every parameter of the optimizer's groups in Python, a supernet's thousands, although a
search step updates one path.

The rule is Paddle's ``update_loss_scaling`` kernel (what its static-graph and fleet AMP run): after
``decr_every_n_nan_or_inf`` overflowed steps in a row the scale is multiplied by ``decr_ratio`` but not below 1;
after ``incr_every_n_steps`` finite steps in a row by ``incr_ratio`` unless that overflows float32. (Paddle's
dygraph rule is the same without those two bounds.)
"""
from typing import Any, Dict, List

import paddle
from paddle import _C_ops
from paddle.amp.grad_scaler import OptimizerState

__all__ = ['GradScaler']


class GradScaler(paddle.amp.GradScaler):
    """Paddle's ``GradScaler`` (same arguments, state dict and calls: ``scale``, ``step``, ``update``) whose
    scale and step counts stay on the device.

    An optimizer with ``step_gradients()`` (the flat gradients its next ``step()`` updates) and
    ``step(skip=found_inf)`` is unscaled and checked in one op per dtype over those gradients only, and skips an
    overflowed step on the device. Any other optimizer goes through Paddle's path (the optimizer reads
    ``found_inf`` on the host).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._enable:
            self._good_steps = paddle.zeros([1], 'int32')      # finite steps in a row
            self._bad_steps = paddle.zeros([1], 'int32')       # overflowed steps in a row
            self._overflow_count = paddle.zeros([1], 'int32')  # steps skipped so far
            self._scratch = paddle.zeros([1])                  # the update kernel's (unused) gradient list

    @property
    def overflows(self) -> int:
        """Steps skipped so far because the scaled gradients overflowed (a device-to-host copy: for logs)."""
        return int(self._overflow_count.numpy()[0]) if self._enable else 0

    def _unscale(self, optimizer) -> None:
        gradients = getattr(optimizer, 'step_gradients', None)
        if gradients is None:
            return super()._unscale(optimizer)
        state = self._optimizer_states[id(optimizer)]
        if state['state'] is not OptimizerState.INIT:
            raise RuntimeError('unscale_() has already been called on this optimizer since the last update(), '
                               'or after step()')
        found = None
        by_dtype: Dict[Any, List[paddle.Tensor]] = {}
        for grad in gradients():
            by_dtype.setdefault(grad.dtype, []).append(grad)
        for grads in by_dtype.values():
            _, found_here = _C_ops.check_finite_and_unscale_(grads, self._scale)
            found = found_here if found is None else paddle.logical_or(found, found_here)
            # an overflowed step's gradients become zeros (the update kernel with its scale update held), so
            # the skipped step's arithmetic stays finite
            _C_ops.update_loss_scaling_(grads, found_here, self._scale, self._good_steps, self._bad_steps,
                                        self._incr_every_n_steps, self._decr_every_n_nan_or_inf,
                                        self._incr_ratio, self._decr_ratio, True)
        self._found_inf = paddle.zeros([1], 'bool') if found is None else found
        state['state'] = OptimizerState.UNSCALED

    def step(self, optimizer) -> None:
        """Unscale, check and step; an overflowed step changes no weight (skipped on the device when the
        optimizer supports it)."""
        if not self._enable or not hasattr(optimizer, 'step_gradients'):
            return super().step(optimizer)
        state = self._optimizer_states[id(optimizer)]
        if state['state'] is OptimizerState.STEPPED:
            raise RuntimeError('step() has already been called since the last update().')
        if state['state'] is OptimizerState.INIT:
            self._unscale(optimizer)
        optimizer.step(skip=self._found_inf)
        state['state'] = OptimizerState.STEPPED

    def _update(self) -> None:
        if not self._enable:
            return
        found = self._found_inf.reshape([1])
        _C_ops.update_loss_scaling_([self._scratch], found, self._scale, self._good_steps, self._bad_steps,
                                    self._incr_every_n_steps, self._decr_every_n_nan_or_inf,
                                    self._incr_ratio, self._decr_ratio, False)
        self._overflow_count.add_(found.astype('int32'))

    def state_dict(self) -> Dict[str, Any]:
        """Paddle's keys; ``incr_count``/``decr_count`` read from the device (a copy: at checkpoints only)."""
        state = super().state_dict()
        if state:
            state['incr_count'] = int(self._good_steps.numpy()[0])
            state['decr_count'] = int(self._bad_steps.numpy()[0])
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Paddle's state dict (ours or Paddle's own GradScaler's)."""
        super().load_state_dict(state_dict)
        if self._enable:
            self._good_steps = paddle.full([1], int(self._incr_count), 'int32')
            self._bad_steps = paddle.full([1], int(self._decr_count), 'int32')
