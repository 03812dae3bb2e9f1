"""pimm's GradScaler: Paddle's dynamic loss scaling, without the crash at the first overflow (NumPy 2.4)."""
import numpy as np
import paddle
import pytest

from fake_gpu import enabled_grad_scaler
from pimm.optim import create_optimizer
from pimm.utils.amp import GradScaler


def _loss(lin, x):
    # Paddle's recipe: auto_cast around forward and loss (it also tells the scaler the AMP dtype: a
    # GradScaler that never saw a float16 auto_cast turns itself off in scale())
    with paddle.amp.auto_cast():
        return lin(x).sum()


def _overflowed_step(scaler):
    lin = paddle.nn.Linear(3, 2)
    opt = create_optimizer(lin, 'sgd', lr=0.1)
    before = lin.weight.numpy().copy()
    scaler.scale(_loss(lin, paddle.full([1, 3], 1e30)) * 1e30).backward()  # inf gradients
    scaler.step(opt)
    scaler.update()
    return before, lin.weight.numpy()


def test_paddles_scaler_crashes_at_the_first_overflow_with_this_numpy(monkeypatch):
    """Why the subclass exists: Paddle 3.3 prints float(scale) of a shape-[1] tensor."""
    try:
        float(np.array([1.]))
        pytest.skip(f'NumPy {np.__version__} still converts 1-element arrays to float: nothing to show')
    except TypeError:
        pass
    scaler = enabled_grad_scaler(monkeypatch, paddle.amp.GradScaler, init_loss_scaling=1024.)
    with pytest.raises(TypeError, match='0-dimensional'):
        _overflowed_step(scaler)


def test_overflow_skips_the_step_and_halves_the_scale(monkeypatch):
    scaler = enabled_grad_scaler(monkeypatch, GradScaler, init_loss_scaling=1024., incr_every_n_steps=2)
    before, after = _overflowed_step(scaler)
    np.testing.assert_array_equal(before, after)
    assert float(scaler._scale.numpy()[0]) == 512. and scaler.overflows == 1
    lin = paddle.nn.Linear(3, 2)
    opt = create_optimizer(lin, 'sgd', lr=0.1)
    for _ in range(2):  # two finite steps in a row double it
        scaler.scale(_loss(lin, paddle.ones([1, 3]))).backward()
        scaler.step(opt)
        scaler.update()
        opt.clear_grad()
    assert float(scaler._scale.numpy()[0]) == 1024. and scaler.is_enable()
    restored = enabled_grad_scaler(monkeypatch, GradScaler)
    restored.load_state_dict(scaler.state_dict())
    assert float(restored._scale.numpy()[0]) == 1024.
