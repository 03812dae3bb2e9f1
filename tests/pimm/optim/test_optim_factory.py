"""create_optimizer against timm's create_optimizer_v2 on a PyTorch twin: same groups, same updates."""
import os

import numpy as np
import paddle
import pytest
import timm.optim
import torch
from timm.optim import param_groups_weight_decay as timm_param_groups

from pimm.optim import RMSpropTF, create_optimizer, list_optimizers
from pimm.utils.checkpoint_io import load_paddle_file, save_paddle_file

CASES = [
    ('sgd', dict(lr=0.1, weight_decay=1e-2, momentum=0.9)),
    ('nesterov', dict(lr=0.05, weight_decay=3e-2, momentum=0.8)),
    ('momentum', dict(lr=0.1, weight_decay=1e-2, momentum=0.9)),
    ('rmsprop', dict(lr=1e-2, weight_decay=1e-2, momentum=0.9, eps=1e-3)),
    ('rmsproptf', dict(lr=1e-2, weight_decay=1e-2, momentum=0.9, eps=1e-3)),
    ('adam', dict(lr=1e-2, weight_decay=1e-2, eps=1e-8)),
    ('adamw', dict(lr=1e-2, weight_decay=5e-2, eps=1e-8)),
]


def _layout(groups):
    return [(len(g['params']), g['weight_decay']) for g in groups]


def _run(twins, paddle_opt, torch_opt, steps=3):
    diffs = []
    for step in range(steps):
        twins.set_grads(step)
        torch_opt.step()
        paddle_opt.step()
        diffs.append(twins.max_diff())
        torch_opt.zero_grad()
        paddle_opt.clear_grad()
    return diffs


@pytest.mark.parametrize('opt,kwargs', CASES, ids=[c[0] for c in CASES])
def test_matches_timm_create_optimizer_v2(twins, opt, kwargs):
    torch_opt = timm.optim.create_optimizer_v2(twins.torch, opt, **kwargs)
    paddle_opt = create_optimizer(twins.paddle, opt, **kwargs)
    assert isinstance(paddle_opt, paddle.optimizer.Optimizer)
    assert _layout(paddle_opt.param_groups) == _layout(torch_opt.param_groups)
    assert _layout(paddle_opt.param_groups) == _layout(timm_param_groups(twins.torch, kwargs['weight_decay']))
    if opt in ('sgd', 'nesterov', 'momentum'):
        assert paddle_opt.param_groups[0]['nesterov'] == torch_opt.param_groups[0]['nesterov'] == (opt != 'momentum')
    if opt == 'rmsproptf':
        assert isinstance(torch_opt, timm.optim.RMSpropTF) and isinstance(paddle_opt, RMSpropTF)
    diffs = _run(twins, paddle_opt, torch_opt)
    assert max(diffs) <= 1e-6


def test_no_filter_gives_one_decayed_group(twins):
    opt = create_optimizer(twins.paddle, 'sgd', weight_decay=1e-4, filter_bias_and_bn=False)
    assert _layout(opt.param_groups) == [(6, 1e-4)]


def test_bn_statistics_never_optimized(twins):
    bn = twins.paddle[1]
    for opt in list_optimizers():
        optimizer = create_optimizer(twins.paddle, opt, weight_decay=1e-2)
        ids = {id(p) for g in optimizer.param_groups for p in g['params']}
        assert id(bn._mean) not in ids and id(bn._variance) not in ids
        assert len(ids) == 6


def test_extra_param_group_keeps_own_lr(twins):
    """A meta-layer group with its own lr and no decay, as Cream's supernet optimizer has."""
    head = twins.paddle[3]
    extra = [{'params': head.parameters(), 'lr': 1e-3}]
    paddle_opt = create_optimizer(twins.paddle, 'sgd', lr=0.1, weight_decay=1e-2, param_groups=extra)
    assert _layout(paddle_opt.param_groups) == [(3, 0.), (1, 1e-2), (2, 0.)]
    assert [g['lr'] for g in paddle_opt.param_groups] == [0.1, 0.1, 1e-3]
    conv, bn, _, lin = twins.torch
    torch_opt = torch.optim.SGD([
        {'params': [conv.bias, bn.weight, bn.bias], 'weight_decay': 0.},
        {'params': [conv.weight], 'weight_decay': 1e-2},
        {'params': [lin.weight, lin.bias], 'lr': 1e-3, 'weight_decay': 0.},
    ], lr=0.1, momentum=0.9, nesterov=True)
    assert max(_run(twins, paddle_opt, torch_opt)) <= 1e-6


def test_grad_clip_norm_matches_torch(twins):
    paddle_opt = create_optimizer(twins.paddle, 'momentum', lr=0.1, weight_decay=1e-2, grad_clip_norm=0.5)
    torch_opt = timm.optim.create_optimizer_v2(twins.torch, 'momentum', lr=0.1, weight_decay=1e-2)
    for step in range(3):
        twins.set_grads(step)
        torch.nn.utils.clip_grad_norm_(twins.torch.parameters(), 0.5)
        torch_opt.step()
        paddle_opt.step()
        twins.max_diff()
        torch_opt.zero_grad()
        paddle_opt.clear_grad()


@pytest.mark.parametrize('opt', list_optimizers())
def test_parameters_without_grad_are_untouched(twins, opt):
    optimizer = create_optimizer(twins.paddle, opt, lr=0.1, weight_decay=1e-2)
    for step in range(2):  # build momentum / moment state for everything
        twins.set_grads(step)
        optimizer.step()
        optimizer.clear_grad()
    params = [p for g in optimizer.param_groups for p in g['params']]
    assert all(p.grad is None for p in params)  # clear_grad() drops grads by default
    before = [p.numpy().copy() for p in params]
    state_before = {i: {k: v.numpy().copy() if isinstance(v, paddle.Tensor) else v for k, v in s.items()}
                    for i, s in optimizer.state.items()}
    twins.set_grads(2, names={'0.weight'})
    optimizer.step()
    for i, (p, old) in enumerate(zip(params, before)):
        changed = not np.array_equal(p.numpy(), old)
        assert changed == (p is twins.paddle[0].weight)
        if p is not twins.paddle[0].weight:
            for k, v in optimizer.state[i].items():
                np.testing.assert_array_equal(v.numpy() if isinstance(v, paddle.Tensor) else v, state_before[i][k])


def test_state_dict_round_trip_through_a_file(tmp_path, make_twins):
    first, second = make_twins(), make_twins()
    opt_a = create_optimizer(first.paddle, 'rmsproptf', lr=0.01, weight_decay=1e-3, eps=1e-3)
    for step in range(2):
        first.set_grads(step)
        opt_a.step()
        opt_a.clear_grad()
    opt_a.param_groups[0]['initial_lr'] = 0.05
    path = os.path.join(tmp_path, 'opt.pdparams')
    save_paddle_file(opt_a.state_dict(), path)
    second.paddle.set_state_dict(first.paddle.state_dict())
    opt_b = create_optimizer(second.paddle, 'rmsproptf', lr=0.5, weight_decay=1e-3)
    opt_b.set_state_dict(load_paddle_file(path))
    assert opt_b.param_groups[0]['initial_lr'] == 0.05 and opt_b.get_lr() == 0.01
    first.set_grads(5)
    second.set_grads(5)
    opt_a.step()
    opt_b.step()
    for (_, _, pa), (_, _, pb) in zip(first.pairs, second.pairs):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())


def test_state_dict_of_another_layout_is_rejected(twins):
    full = create_optimizer(twins.paddle, 'sgd', weight_decay=1e-2)
    single = create_optimizer(twins.paddle, 'sgd', weight_decay=1e-2, filter_bias_and_bn=False)
    with pytest.raises(ValueError, match='does not fit'):
        single.set_state_dict(full.state_dict())


def test_lr_api_and_bad_names(twins):
    opt = create_optimizer(twins.paddle, 'adamw', lr=0.3)
    assert opt.get_lr() == 0.3
    opt.set_lr(0.2)
    assert [g['lr'] for g in opt.param_groups] == [0.2]
    with pytest.raises(ValueError, match='valid choices: sgd, nesterov, momentum, rmsprop, rmsproptf, adam, adamw'):
        create_optimizer(twins.paddle, 'lamb')


def test_works_with_data_parallel_and_param_lists(twins):
    model = paddle.DataParallel(twins.paddle)
    opt = create_optimizer(model, 'sgd', lr=0.1, weight_decay=1e-2)
    assert _layout(opt.param_groups) == [(4, 0.), (2, 1e-2)]
    before = twins.paddle[0].weight.numpy().copy()
    twins.paddle.train()
    model(paddle.randn([2, 3, 3, 4])).sum().backward()
    opt.step()
    assert not np.array_equal(before, twins.paddle[0].weight.numpy())
    plain = create_optimizer(twins.paddle.parameters(), 'adam', weight_decay=1e-2)
    assert _layout(plain.param_groups) == [(6, 1e-2)]
