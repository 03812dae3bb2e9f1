"""FusedSGD: timm/PyTorch's SGD on chosen units of fused storage, one multi-tensor op a step."""
import numpy as np
import pytest
import timm.optim

from pimm.optim import SGD, FusedSGD, create_optimizer

KWARGS = dict(lr=0.1, weight_decay=1e-2, momentum=0.9)


def _units(twins):
    net = twins.paddle
    return [[net[0], net[1]], [net[3]]]


@pytest.mark.parametrize('opt', ['sgd', 'nesterov', 'momentum'])
def test_matches_timm_on_every_unit(twins, opt):
    torch_opt = timm.optim.create_optimizer_v2(twins.torch, opt, **KWARGS)
    ours = create_optimizer(twins.paddle, opt, fused_units=_units(twins), **KWARGS)
    assert isinstance(ours, FusedSGD)
    for step in range(3):
        ours.zero_grad()
        twins.set_grads(step)
        torch_opt.step()
        ours.step()
        torch_opt.zero_grad()
        assert twins.max_diff() <= 1e-6
    ours.fused.check()


def test_only_the_named_units_move(twins):
    """A supernet step names its path's units: the others get no momentum and no weight decay, exactly
    what PyTorch does with parameters whose grad is None."""
    torch_opt = timm.optim.create_optimizer_v2(twins.torch, 'sgd', **KWARGS)
    ours = create_optimizer(twins.paddle, 'sgd', fused_units=_units(twins), **KWARGS)
    frozen = {k: v.numpy().copy() for k, v in twins.paddle.state_dict().items() if not k.startswith('3.')}
    for step in range(3):
        ours.zero_grad()
        twins.set_grads(step, names={'3.weight', '3.bias'})
        torch_opt.step()
        ours.step([1])
        torch_opt.zero_grad(set_to_none=True)
        assert twins.max_diff() <= 1e-6
    for k, v in frozen.items():
        np.testing.assert_array_equal(twins.paddle.state_dict()[k].numpy(), v)
    state = ours.state_dict()['state']
    assert sorted(state) == [3, 5]  # buffers only for the linear layer's bias and weight (groups: no-decay first)
    with ours.restricted_to([0]):   # what GradScaler.step's plain step() updates inside
        ours.zero_grad()
        twins.set_grads(9)
        ours.step()
    assert sorted(ours.state_dict()['state']) == [0, 1, 2, 3, 4, 5]


def test_state_dict_is_interchangeable_with_sgd(twins):
    ours = create_optimizer(twins.paddle, 'sgd', fused_units=_units(twins), **KWARGS)
    for step in range(2):
        ours.zero_grad()
        twins.set_grads(step)
        ours.step()
    saved = {'state': {i: {k: v.numpy() for k, v in s.items()} for i, s in ours.state_dict()['state'].items()},
             'param_groups': ours.state_dict()['param_groups']}
    plain = SGD([{'params': g['params'], 'weight_decay': g['weight_decay']} for g in ours.param_groups],
                lr=0.1, momentum=0.9, nesterov=True)
    plain.set_state_dict(saved)
    again = FusedSGD([{'params': g['params'], 'weight_decay': g['weight_decay']} for g in ours.param_groups],
                     ours.fused, lr=0.1, momentum=0.9, nesterov=True)
    again.set_state_dict(saved)
    for i, entry in saved['state'].items():
        np.testing.assert_array_equal(again.state[i]['momentum_buffer'].numpy(), entry['momentum_buffer'])
        np.testing.assert_array_equal(plain.state[i]['momentum_buffer'].numpy(), entry['momentum_buffer'])
    # the restored buffers are the fused ones: a step moves from them
    ours.fused.check()
    assert again._velocity[1]._is_shared_buffer_with(again.state[5]['momentum_buffer'])


def test_refused_combinations(twins):
    with pytest.raises(ValueError, match='SGD family'):
        create_optimizer(twins.paddle, 'rmsproptf', fused_units=_units(twins), **KWARGS)
    with pytest.raises(ValueError, match='in no unit'):
        create_optimizer(twins.paddle, 'sgd', fused_units=[[twins.paddle[3]]], **KWARGS)


@pytest.mark.parametrize('opt', ['sgd', 'momentum'])
def test_a_skipped_step_leaves_weights_and_momentum_bit_for_bit(twins, opt):
    """``skip`` (an AMP overflow, decided on the device): with momentum and weight decay a step moves weights and
    momentum buffers even with zero gradients; a skipped one moves neither. The training then goes on as timm's
    without that step (issue 23, defect 2)."""
    import paddle
    torch_opt = timm.optim.create_optimizer_v2(twins.torch, opt, **KWARGS)
    ours = create_optimizer(twins.paddle, opt, fused_units=_units(twins), **KWARGS)
    for step in range(2):
        ours.zero_grad()
        twins.set_grads(step)
        torch_opt.step()
        ours.step(skip=paddle.to_tensor([False]))
        torch_opt.zero_grad()
    assert twins.max_diff() <= 1e-6
    ours.zero_grad()
    twins.set_grads(7)   # finite gradients: a skipped step must ignore them
    torch_opt.zero_grad()
    before = [(v.numpy().copy(), m.numpy().copy()) for v, m in zip(ours.fused.values, ours._velocity)]
    ours.step(skip=paddle.to_tensor([True]))
    for (values, velocity), v, m in zip(before, ours.fused.values, ours._velocity):
        np.testing.assert_array_equal(v.numpy(), values)
        np.testing.assert_array_equal(m.numpy(), velocity)
    ours.zero_grad()
    twins.set_grads(2)
    torch_opt.step()
    ours.step(skip=paddle.to_tensor([False]))
    assert twins.max_diff() <= 1e-6
