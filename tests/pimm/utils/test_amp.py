"""pimm's GradScaler: Paddle's dynamic loss scaling, without the crash at the first overflow (NumPy 2.4)."""
import numpy as np
import paddle
import pytest

from fake_gpu import built_as_on_gpu
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
    scaler = built_as_on_gpu(paddle.amp.GradScaler, init_loss_scaling=1024.)
    with pytest.raises(TypeError, match='0-dimensional'):
        _overflowed_step(scaler)


def test_overflow_skips_the_step_and_halves_the_scale(monkeypatch):
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024., incr_every_n_steps=2)
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
    restored = built_as_on_gpu(GradScaler)
    restored.load_state_dict(scaler.state_dict())
    assert float(restored._scale.numpy()[0]) == 1024.


def _fused_two_layers():
    net = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.Linear(4, 2))
    opt = create_optimizer(net, 'momentum', lr=0.1, weight_decay=1e-2, momentum=0.9,
                           fused_units=[[net[0]], [net[1]]])
    return net, opt


def _fused_step(scaler, net, opt, x, units=(0, 1)):
    opt.zero_grad()
    scaler.scale(_loss(net, x)).backward()
    with opt.restricted_to(list(units)):
        scaler.step(opt)
        scaler.update()


def test_the_loss_scale_follows_pytorchs_rule():
    """Overflows and finite steps in a made-up order: the scale after each step equals PyTorch's
    ``_amp_update_scale_`` (the rule of torch.amp.GradScaler) given the same flags, and an overflowed step
    moves no weight."""
    import torch
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024., incr_every_n_steps=3, decr_every_n_nan_or_inf=1)
    net, opt = _fused_two_layers()
    scale, tracker = torch.tensor([1024.]), torch.tensor([0], dtype=torch.int32)
    flags = [1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    for overflow in flags:
        before = [p.numpy().copy() for p in net.parameters()]
        _fused_step(scaler, net, opt, paddle.full([1, 3], float('inf') if overflow else 1.))
        torch._amp_update_scale_(scale, tracker, torch.tensor([float(overflow)]), 2.0, 0.5, 3)
        assert float(scaler._scale.numpy()[0]) == scale.item()
        moved = [not np.array_equal(b, p.numpy()) for b, p in zip(before, net.parameters())]
        assert not any(moved) if overflow else all(moved)
    assert scaler.overflows == sum(flags)


def test_the_kernels_bounds_a_scale_of_1_and_no_overflow():
    """Where Paddle's update_loss_scaling kernel (which the scaler runs) differs from PyTorch's rule: the scale
    does not fall below 1 and does not grow past float32."""
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1., incr_every_n_steps=1)
    net, opt = _fused_two_layers()
    _fused_step(scaler, net, opt, paddle.full([1, 3], float('inf')))
    assert float(scaler._scale.numpy()[0]) == 1.
    scaler._scale.set_value(paddle.to_tensor([3e38]))
    opt.zero_grad()
    scaler.scale(_loss(net[1], paddle.full([1, 4], 1e-30))).backward()   # finite scaled gradients, up to 3e38
    with opt.restricted_to([1]):
        scaler.step(opt)
        scaler.update()
    assert scaler.overflows == 1
    assert float(scaler._scale.numpy()[0]) == np.float32(3e38)


def test_a_fused_step_checks_its_own_units_only_and_copies_nothing_to_the_host():
    """Issue 23, defect 2: the gradients the optimizer's step updates are unscaled and checked (one op), a stale
    non-finite gradient elsewhere does not mark the step as an overflow, and neither step nor update reads a
    value on the host."""
    from pimm.utils.host_copies import HostCopyCounter
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024.)
    net, opt = _fused_two_layers()
    opt.fused.grads[0].set_value(paddle.full(opt.fused.grads[0].shape, float('inf')))   # left by an old step
    before = net[1].weight.numpy().copy()
    scaler.scale(_loss(net[1], paddle.ones([1, 4]))).backward()   # gradients of unit 1 only
    with HostCopyCounter() as copies:
        with opt.restricted_to([1]):
            scaler.step(opt)
            scaler.update()
    assert copies.count == 0
    np.testing.assert_allclose(net[1].weight.numpy(), before - 0.1 * (1. + 1e-2 * before), rtol=1e-6)
    assert scaler.overflows == 0 and float(scaler._scale.numpy()[0]) == 1024.


def test_state_dict_keeps_the_step_counts():
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=64., incr_every_n_steps=5)
    net, opt = _fused_two_layers()
    for _ in range(3):
        _fused_step(scaler, net, opt, paddle.ones([1, 3]))
    state = scaler.state_dict()
    assert state['incr_count'] == 3 and state['decr_count'] == 0 and float(state['scale'][0]) == 64.
    restored = built_as_on_gpu(GradScaler)
    restored.load_state_dict(state)
    for _ in range(2):   # two more finite steps make five in a row: doubled
        _fused_step(restored, net, opt, paddle.ones([1, 3]))
    assert float(restored._scale.numpy()[0]) == 128.
    paddles = built_as_on_gpu(paddle.amp.GradScaler, init_loss_scaling=32.)   # Paddle's own scaler's state loads
    restored.load_state_dict(paddles.state_dict())
    assert float(restored._scale.numpy()[0]) == 32. and restored.state_dict()['incr_count'] == 0
