"""RMSpropTF (and PyTorch-style RMSprop) against timm.optim.RMSpropTF / torch.optim.RMSprop."""
import numpy as np
import paddle
import pytest
import timm.optim
import torch

from pimm.optim import RMSprop, RMSpropTF

TF_CONFIGS = [
    dict(lr=1e-2, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=1e-2),
    dict(lr=1e-2, alpha=0.9, eps=1e-3, momentum=0., weight_decay=1e-2),
    dict(lr=1e-2, alpha=0.9, eps=1e-3, momentum=0.9, lr_in_momentum=False),
    dict(lr=1e-2, alpha=0.95, eps=1e-3, momentum=0.9, centered=True, weight_decay=1e-3),
    dict(lr=1e-2, alpha=0.9, eps=1e-10, momentum=0.9, decoupled_decay=True, weight_decay=1e-1),
]


def _steps(twins, paddle_opt, torch_opt, steps=3):
    worst = 0.
    for step in range(steps):
        twins.set_grads(step)
        torch_opt.step()
        paddle_opt.step()
        worst = max(worst, twins.max_diff())
        torch_opt.zero_grad()
        paddle_opt.clear_grad()
    return worst


@pytest.mark.parametrize('kwargs', TF_CONFIGS)
def test_rmsprop_tf_matches_timm(twins, kwargs):
    torch_opt = timm.optim.RMSpropTF(twins.torch.parameters(), foreach=False, **kwargs)
    paddle_opt = RMSpropTF(twins.paddle.parameters(), **kwargs)
    assert _steps(twins, paddle_opt, torch_opt) <= 1e-6


def test_rmsprop_tf_state_starts_at_ones(twins):
    opt = RMSpropTF(twins.paddle.parameters(), lr=0.1, alpha=0.9, momentum=0.9)
    twins.set_grads(0)
    grads = [p.grad.numpy().copy() for _, _, p in twins.pairs]
    opt.step()
    for i, g in enumerate(grads):
        np.testing.assert_allclose(opt.state[i]['square_avg'].numpy(), 0.9 + 0.1 * g * g, rtol=1e-6)


@pytest.mark.parametrize('centered', [False, True])
def test_rmsprop_matches_torch(twins, centered):
    kwargs = dict(lr=1e-2, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=1e-2, centered=centered)
    torch_opt = torch.optim.RMSprop(twins.torch.parameters(), foreach=False, **kwargs)
    paddle_opt = RMSprop(twins.paddle.parameters(), **kwargs)
    assert _steps(twins, paddle_opt, torch_opt) <= 1e-6


def test_rmsprop_tf_skips_parameters_without_grad(twins):
    opt = RMSpropTF(twins.paddle.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    twins.set_grads(0)
    opt.step()
    opt.clear_grad(set_to_zero=False)
    bias = twins.paddle[3].bias
    before = bias.numpy().copy()
    twins.set_grads(1, names={'0.weight'})
    opt.step()
    np.testing.assert_array_equal(bias.numpy(), before)
    twins.set_grads(2)
    opt.clear_grad(set_to_zero=True)  # zeroed grads: momentum keeps moving the parameter (PyTorch does too)
    opt.step()
    assert not np.array_equal(bias.numpy(), before)


def test_bad_hyper_parameters(twins):
    with pytest.raises(ValueError):
        RMSpropTF(twins.paddle.parameters(), lr=-1.)
    with pytest.raises(ValueError, match='no trainable parameters'):
        RMSpropTF([twins.paddle[1]._mean])
    with pytest.raises(ValueError, match='more than one'):
        params = list(twins.paddle.parameters())
        RMSpropTF([{'params': params[:2]}, {'params': params[1:3]}])
    assert isinstance(RMSpropTF(twins.paddle.parameters()), paddle.optimizer.Optimizer)
