"""ModelEma against the EMA formula and timm's ModelEmaV2 on a PyTorch twin."""
import numpy as np
import paddle
import pytest
import torch
from timm.utils import ModelEmaV2

from torch2paddle.convert import convert_state_dict
from pimm.utils.model_ema import ModelEma

DECAY = 0.9


def _torch_net():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(16, 5))


def _paddle_net():
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.ReLU(),
                                paddle.nn.Flatten(), paddle.nn.Linear(16, 5))


def _numpy_state(layer):
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def _move(torch_net, paddle_net, parity, seed):
    """New random weights and BN statistics on the torch net, copied to the Paddle one."""
    torch.manual_seed(seed)
    for m in torch_net.modules():
        if hasattr(m, 'reset_parameters') and not isinstance(m, torch.nn.BatchNorm2d):
            m.reset_parameters()
    parity.copy(parity.randomize_bn(torch_net, seed), paddle_net)


def test_update_matches_formula_including_bn_statistics(parity):
    model = _paddle_net()
    ema = ModelEma(model, decay=DECAY)
    assert not ema.module.training and ema.module is not model
    expected = _numpy_state(model)
    for seed in range(1, 4):
        _move(_torch_net(), model, parity, seed)
        ema.update(model)
        current = _numpy_state(model)
        expected = {k: DECAY * expected[k] + (1 - DECAY) * current[k] for k in expected}
        got = _numpy_state(ema.module)
        assert {'1._mean', '1._variance'} <= set(got)
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-6, err_msg=k)


def test_matches_timm_model_ema_v2(parity):
    torch_net, model = _torch_net(), _paddle_net()
    parity.copy(parity.randomize_bn(torch_net, 0), model)
    theirs, ours = ModelEmaV2(torch_net, decay=DECAY), ModelEma(paddle.DataParallel(model), decay=DECAY)
    for seed in range(1, 4):
        _move(torch_net, model, parity, seed)
        theirs.update(torch_net)
        ours.update(paddle.DataParallel(model))
        expected = convert_state_dict(parity.torch_state(theirs.module), ours.module)
        got = _numpy_state(ours.module)
        worst = max(float(np.abs(got[k] - expected[k]).max()) for k in expected)
        assert worst <= 1e-6


def test_set_state_dict_and_call(parity):
    model = _paddle_net()
    ema = ModelEma(model, decay=0.5, device='cpu')
    _move(_torch_net(), model, parity, 5)
    ema.set(model)
    for k, v in _numpy_state(model).items():
        np.testing.assert_array_equal(_numpy_state(ema.module)[k], v)
    other = ModelEma(_paddle_net())
    other.set_state_dict({k: v.numpy() for k, v in ema.state_dict().items()})
    x = paddle.randn([2, 3, 4, 4])
    model.eval()
    np.testing.assert_allclose(other(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
    assert all(p.stop_gradient for p in ema.module.parameters())
    with pytest.raises(KeyError, match='does not fit'):
        other.set_state_dict({'0.weight': ema.state_dict()['0.weight']})


def _fused_net():
    from pimm.optim.optim_factory import param_groups_weight_decay
    from pimm.utils.fused_storage import FusedUnits
    net = _paddle_net()
    groups = param_groups_weight_decay(net, 1e-4)
    return net, FusedUnits([[net[0], net[1]], [net[4]]], [g['params'] for g in groups])


def test_lazy_per_unit_average_equals_the_every_step_average():
    """A unit left alone for L steps is moved by 1 - decay**L towards its (unchanged) weights when next
    touched: the same numbers as averaging every step."""
    net, fused = _fused_net()
    lazy, eager = ModelEma(net, decay=DECAY, fused=fused), ModelEma(net, decay=DECAY)
    rng = np.random.RandomState(0)
    for step in range(12):
        changed = [u for u in range(2) if rng.rand() < 0.4]
        lazy.catch_up(changed)
        with paddle.no_grad():
            for u in changed:
                fused.values[u].add_(paddle.to_tensor(rng.randn(int(fused.values[u].size)).astype('float32')))
        lazy.update(net, changed)
        eager.update(net)
    got, expected = lazy.state_dict(), eager.state_dict()
    for k in expected:
        np.testing.assert_allclose(got[k].numpy(), expected[k].numpy(), rtol=1e-6, atol=1e-6, err_msg=k)
    with pytest.raises(RuntimeError, match='catch_up'):
        lazy.update(net, [0])  # unit 0 is current; a second update without catch-up is out of order
        lazy.update(net, [1])


def test_lazy_average_of_a_unit_never_touched_costs_nothing():
    net, fused = _fused_net()
    ema = ModelEma(net, decay=DECAY, fused=fused)
    before = ema._flat[1].numpy().copy()
    for _ in range(5):
        ema.catch_up([0])
        ema.update(net, [0])
    np.testing.assert_array_equal(ema._flat[1].numpy(), before)  # not read, not written
    assert ema._last == [5, 0]


def test_loading_keeps_the_average_where_it_lives(monkeypatch):
    """NET.EMA.FORCE_CPU: Tensor.set_value of an array allocates on the *current* device, so a resumed
    CPU average landed on the GPU. Loading must write each tensor on its own device, never asking which
    device is current (on a CPU-only build this is how the mechanism is seen)."""
    import paddle.base.framework as framework
    model = _paddle_net()
    ema = ModelEma(model, decay=0.5, device='cpu')
    state = {k: v.numpy() + 1 for k, v in model.state_dict().items()}

    def current_device_asked():
        raise AssertionError('the current device was consulted')
    monkeypatch.setattr(framework, '_current_expected_place', current_device_asked)
    ema.set_state_dict(state)
    for k, v in ema.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])
        assert v.place.is_cpu_place()
