"""``paddle.amp.GradScaler`` whose dynamic loss scaling survives its first overflow under NumPy 2.4+.

Paddle 3.3's ``GradScaler._update`` announces a found inf/nan with ``float(self._scale)``; the scale is
a 1-element tensor of shape [1], and NumPy 2.4 no longer converts arrays with ndim > 0 to a Python float
(TypeError). Training in float16 therefore crashes at the first overflowed step, which is exactly the
step loss scaling exists to absorb. This subclass keeps Paddle's rule and state and drops the print.
"""
import paddle

__all__ = ['GradScaler']


class GradScaler(paddle.amp.GradScaler):
    """Paddle's ``GradScaler`` (same arguments, state dict and steps) with a NumPy-2.4-safe scale update:
    after ``decr_every_n_nan_or_inf`` overflowed steps in a row the scale is multiplied by ``decr_ratio``,
    after ``incr_every_n_steps`` finite steps in a row by ``incr_ratio``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.overflows = 0   # steps skipped so far because the scaled gradients overflowed

    def _update(self) -> None:
        if not self._enable:
            return
        if self._cache_found_inf:
            self.overflows += 1
            self._incr_count = 0
            self._decr_count += 1
            if self._decr_count == self._decr_every_n_nan_or_inf:
                self._scale = self._scale * self._decr_ratio
                self._decr_count = 0
        else:
            self._decr_count = 0
            self._incr_count += 1
            if self._incr_count == self._incr_every_n_steps:
                self._scale = self._scale * self._incr_ratio
                self._incr_count = 0
