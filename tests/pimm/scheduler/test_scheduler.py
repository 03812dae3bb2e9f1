"""Schedulers against timm's on a torch SGD optimizer: whole lr curves, per epoch and per update."""
import numpy as np
import paddle
import pytest
import timm.scheduler
import torch

from pimm.optim import SGD
from pimm.scheduler import (CosineLRScheduler, LinearLRScheduler, StepLRScheduler, TorchCpuGenerator,
                            create_scheduler)

BASE_LRS = (0.1, 1e-3, 0.05)  # two groups of a pimm optimizer + a Paddle built-in optimizer


def _optimizers():
    """pimm side: SGD with two groups and a paddle.optimizer.Momentum; torch side: SGD with three groups."""
    weights = [paddle.create_parameter([2], 'float32') for _ in range(3)]
    ours = [SGD([{'params': [weights[0]], 'lr': BASE_LRS[0]}, {'params': [weights[1]], 'lr': BASE_LRS[1]}],
                momentum=0.9),
            paddle.optimizer.Momentum(BASE_LRS[2], parameters=[weights[2]])]
    theirs = torch.optim.SGD([{'params': [torch.nn.Parameter(torch.zeros(2))], 'lr': lr} for lr in BASE_LRS],
                             lr=0.1, momentum=0.9)
    return ours, theirs


def _theirs_lrs(opt):
    return [g['lr'] for g in opt.param_groups]


def _curves(ours, theirs, epochs, updates_per_epoch, step_on_epochs):
    """lr of every slot after construction, after every update and at every epoch end."""
    a, b = [ours.get_lrs()], [_theirs_lrs(theirs.optimizer)]
    for epoch in range(epochs):
        if not step_on_epochs:
            for i in range(updates_per_epoch):
                n = epoch * updates_per_epoch + i + 1
                ours.step_update(n)
                theirs.step_update(n)
                a.append(ours.get_lrs())
                b.append(_theirs_lrs(theirs.optimizer))
        ours.step(epoch + 1)
        theirs.step(epoch + 1)
        a.append(ours.get_lrs())
        b.append(_theirs_lrs(theirs.optimizer))
    return np.array(a), np.array(b)


SETTINGS = [
    dict(warmup_epochs=3, warmup_lr=1e-4, cooldown_epochs=4, min_lr=1e-5, lr_noise=None),
    dict(warmup_epochs=2, warmup_lr=1e-4, cooldown_epochs=3, min_lr=1e-5, lr_noise=[0.3, 0.9], warmup_prefix=True),
    dict(warmup_epochs=0, warmup_lr=0., cooldown_epochs=0, min_lr=0., lr_noise=0.5, lr_noise_pct=0.4,
         lr_noise_std=0.8, seed=7),
]


def _run_both(sched, settings, step_on_epochs, lr_noise):
    ours_opts, torch_opt = _optimizers()
    upe = 0 if step_on_epochs else 7
    common = dict(decay_epochs=2.4, warmup_epochs=settings['warmup_epochs'], warmup_lr=settings['warmup_lr'],
                  min_lr=settings['min_lr'], cooldown_epochs=settings['cooldown_epochs'],
                  warmup_prefix=settings.get('warmup_prefix', False), updates_per_epoch=upe,
                  step_on_epochs=step_on_epochs)
    noise = dict(pct=settings.get('lr_noise_pct', 0.67), std=settings.get('lr_noise_std', 1.),
                 seed=settings.get('seed', 42))
    ours, n_ours = create_scheduler(ours_opts, sched, epochs=12, decay_rate=0.8, lr_noise=lr_noise,
                                    lr_noise_pct=noise['pct'], lr_noise_std=noise['std'], seed=noise['seed'], **common)
    theirs, n_theirs = timm.scheduler.create_scheduler_v2(
        torch_opt, 'poly' if sched == 'linear' else sched, num_epochs=12, noise=lr_noise, noise_pct=noise['pct'],
        noise_std=noise['std'], noise_seed=noise['seed'], decay_rate=1.0 if sched == 'linear' else 0.8, **common)
    assert n_ours == n_theirs
    a, b = _curves(ours, theirs, n_ours, upe, step_on_epochs)
    assert ours_opts[1].get_lr() == a[-1, 2]  # the built-in optimizer really got its lr
    return a, b


@pytest.mark.parametrize('sched', ['step', 'cosine', 'linear'])
@pytest.mark.parametrize('settings', SETTINGS, ids=['warmup-cooldown', 'noise-range-prefix', 'noise-from-half'])
@pytest.mark.parametrize('step_on_epochs', [True, False], ids=['per-epoch', 'per-update'])
def test_curves_match_timm(sched, settings, step_on_epochs):
    a, b = _run_both(sched, settings, step_on_epochs, settings['lr_noise'])
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    if settings['lr_noise'] is not None:  # the noise really changed the curve
        quiet, _ = _run_both(sched, settings, step_on_epochs, None)
        assert not np.allclose(a, quiet, rtol=1e-6, atol=0)


def test_linear_is_creams_lambda_schedule():
    """Cream search: LambdaLR(lambda step: 1 - step / ITERS) stepped every iteration."""
    iters = 50
    ours_opts, torch_opt = _optimizers()
    ours = LinearLRScheduler(ours_opts, t_initial=iters, t_in_epochs=False)
    theirs = torch.optim.lr_scheduler.LambdaLR(torch_opt, lambda step: 1.0 - step / iters)
    for step in range(1, iters + 3):
        torch_opt.step()
        theirs.step()
        ours.step_update(step)
        expected = [max(lr, 0.) for lr in _theirs_lrs(torch_opt)] if step <= iters else [0.] * 3
        np.testing.assert_allclose(ours.get_lrs(), expected, rtol=1e-12, atol=1e-15)


def test_schedulers_match_timm_classes_directly():
    ours_opts, torch_opt = _optimizers()
    ours = CosineLRScheduler(ours_opts, t_initial=5, lr_min=1e-4, cycle_mul=1.5, cycle_decay=0.5, cycle_limit=3,
                             warmup_t=2, warmup_lr_init=1e-5, k_decay=0.7)
    theirs = timm.scheduler.CosineLRScheduler(torch_opt, t_initial=5, lr_min=1e-4, cycle_mul=1.5, cycle_decay=0.5,
                                              cycle_limit=3, warmup_t=2, warmup_lr_init=1e-5, k_decay=0.7)
    assert ours.get_cycle_length() == theirs.get_cycle_length()
    a, b = _curves(ours, theirs, 25, 0, True)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    ours_opts, torch_opt = _optimizers()
    ours = StepLRScheduler(ours_opts, decay_t=3, decay_rate=0.5, warmup_t=2, warmup_lr_init=1e-4)
    theirs = timm.scheduler.StepLRScheduler(torch_opt, decay_t=3, decay_rate=0.5, warmup_t=2, warmup_lr_init=1e-4)
    a, b = _curves(ours, theirs, 15, 0, True)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_state_dict_round_trip():
    opts_a, _ = _optimizers()
    a, _ = create_scheduler(opts_a, 'cosine', epochs=10, warmup_epochs=2, lr_noise=[0.2, 0.8], seed=3)
    for epoch in range(1, 5):
        a.step(epoch)
    opts_b, _ = _optimizers()
    b, _ = create_scheduler(opts_b, 'cosine', epochs=99, warmup_epochs=0)
    b.load_state_dict(a.state_dict())
    assert 'optimizer' not in a.state_dict()
    for epoch in range(5, 12):
        a.step(epoch)
        b.step(epoch)
        assert a.get_lrs() == b.get_lrs()


def test_noise_generator_replays_torch():
    for seed in list(range(40)) + [42 + 1000, 2 ** 32 + 3]:
        gen, g = TorchCpuGenerator(seed), torch.Generator().manual_seed(seed)
        assert [gen.randn() for _ in range(5)] == [torch.randn(1, generator=g).item() for _ in range(5)]
        gen, g = TorchCpuGenerator(seed), torch.Generator().manual_seed(seed)
        assert [gen.rand() for _ in range(3)] == [torch.rand(1, generator=g).item() for _ in range(3)]


def test_bad_arguments():
    opts, _ = _optimizers()
    with pytest.raises(ValueError, match='valid choices: step, cosine, linear'):
        create_scheduler(opts, 'plateau')
    with pytest.raises(ValueError, match='updates_per_epoch'):
        create_scheduler(opts, 'step', step_on_epochs=False)
