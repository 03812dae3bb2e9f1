"""Full-float32 sections and reproducible random draws: what a finite difference needs on a GPU."""
import contextlib
from typing import Iterator

import paddle

__all__ = ['tf32_disabled', 'tf32_enabled', 'ReplayableDraws']


def _switches():
    core = paddle.base.core
    get = [getattr(core, name, None) for name in ('get_cudnn_switch', 'get_cublas_switch')]
    put = [getattr(core, name, None) for name in ('set_cudnn_switch', 'set_cublas_switch')]
    return [(g, s) for g, s in zip(get, put) if g is not None and s is not None]


def tf32_enabled() -> bool:
    """Whether cuDNN convolutions or cuBLAS matmuls may use TF32 (10-bit mantissa) on Ampere and later."""
    return any(bool(get()) for get, _ in _switches())


@contextlib.contextmanager
def tf32_disabled() -> Iterator[None]:
    """Inside, cuDNN and cuBLAS compute float32 in full float32 (Paddle's ``set_cudnn_switch`` /
    ``set_cublas_switch``: cuDNN convolutions default to TF32 on Ampere and later); restored on exit."""
    switches = _switches()
    saved = [bool(get()) for get, _ in switches]
    try:
        for _, put in switches:
            put(False)
        yield
    finally:
        for (_, put), value in zip(switches, saved):
            put(value)


class ReplayableDraws:
    """Replays the random draws (dropout, drop-path masks) of the current device's generators.

    ``with draws.replay():`` runs its body from the generator state captured at construction; after
    :meth:`done` the generators continue from where they were before the first replay."""

    def __init__(self) -> None:
        self._start = paddle.get_rng_state()
        self._resume = None

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        if self._resume is None:
            self._resume = paddle.get_rng_state()
        paddle.set_rng_state(self._start)
        yield

    def done(self) -> None:
        """Continue the generators where they were before the first replay."""
        if self._resume is not None:
            paddle.set_rng_state(self._resume)
