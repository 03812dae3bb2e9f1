"""CheckpointSaver: best-k pruning like timm's, atomic files that pimm.models loads and resumes from."""
import argparse
import os

import numpy as np
import paddle
import pytest

from pimm.models import load_checkpoint, resume_checkpoint
from pimm.optim import create_optimizer
from pimm.utils.checkpoint_io import load_paddle_file
from pimm.utils.checkpoint_saver import CheckpointSaver
from pimm.utils.model_ema import ModelEma


def _net():
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Flatten(),
                                paddle.nn.Linear(8, 5))


def _train_step(model, optimizer):
    model.train()
    model(paddle.randn([2, 3, 3, 4])).square().mean().backward()
    optimizer.step()
    optimizer.clear_grad()


def _files(directory):
    return sorted(f for f in os.listdir(directory))


def _saver(tmp_path, **kwargs):
    model = _net()
    optimizer = create_optimizer(model, 'rmsproptf', lr=0.01, weight_decay=1e-5, eps=1e-3)
    return model, optimizer, CheckpointSaver(model, optimizer, checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path),
                                             **kwargs)


@pytest.mark.parametrize('decreasing', [False, True])
def test_keeps_exactly_the_best_k(tmp_path, decreasing):
    _, _, saver = _saver(tmp_path, max_history=3, decreasing=decreasing)
    metrics = [5., 1., 7., 3., 7., 2., 9., 4.]
    for epoch, metric in enumerate(metrics):
        best = saver.save_checkpoint(epoch, metric=metric)
    order = sorted(range(len(metrics)), key=lambda e: metrics[e], reverse=not decreasing)  # stable: ties -> earlier
    kept = order[:3]
    assert _files(tmp_path) == sorted([f'checkpoint-{e}.pdparams' for e in kept] + ['last.pdparams',
                                                                                     'model_best.pdparams'])
    assert [os.path.basename(p) for p, _ in saver.checkpoint_files] == [f'checkpoint-{e}.pdparams' for e in kept]
    assert best == (metrics[kept[0]], kept[0])
    assert load_paddle_file(tmp_path / 'model_best.pdparams')['epoch'] == kept[0]
    assert load_paddle_file(tmp_path / 'last.pdparams')['epoch'] == len(metrics) - 1


def test_without_metric_keeps_the_latest(tmp_path):
    _, _, saver = _saver(tmp_path, max_history=2)
    for epoch in range(4):
        assert saver.save_checkpoint(epoch) == (None, None)
    assert _files(tmp_path) == ['checkpoint-2.pdparams', 'checkpoint-3.pdparams', 'last.pdparams']


def test_contents_load_and_resume(tmp_path):
    model, optimizer, _ = _saver(tmp_path)
    ema = ModelEma(model, decay=0.5)
    args = argparse.Namespace(model='cream_14', lr=0.01, arch=[[0], [3]], path=tmp_path)
    saver = CheckpointSaver(model, optimizer, args=args, model_ema=ema, checkpoint_dir=str(tmp_path / 'ck'),
                            recovery_dir=str(tmp_path / 'rec'))
    for epoch in range(2):
        _train_step(model, optimizer)
        ema.update(model)
        saver.save_checkpoint(epoch, metric=np.float32(50. + epoch))
    ck = load_paddle_file(tmp_path / 'ck' / 'last.pdparams')
    assert set(ck) == {'epoch', 'arch', 'state_dict', 'optimizer', 'version', 'metric', 'state_dict_ema', 'args'}
    assert (ck['epoch'], ck['arch'], ck['version'], ck['metric']) == (1, 'cream_14', 2, 51.0)
    assert ck['args'] == {'model': 'cream_14', 'lr': 0.01, 'arch': [[0], [3]], 'path': str(tmp_path)}
    assert not any(f.endswith('.tmp') for f in os.listdir(tmp_path / 'ck'))

    restored = _net()
    load_checkpoint(restored, str(tmp_path / 'ck' / 'last.pdparams'), use_ema=True)
    for k, v in ema.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[k].numpy(), v.numpy())
    fresh_opt = create_optimizer(restored, 'rmsproptf', lr=0.5, weight_decay=1e-5, eps=1e-3)
    assert resume_checkpoint(restored, str(tmp_path / 'ck' / 'checkpoint-1.pdparams'), fresh_opt) == 2
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[k].numpy(), v.numpy())
    assert fresh_opt.get_lr() == 0.01
    paddle.seed(3)
    _train_step(model, optimizer)
    paddle.seed(3)
    _train_step(restored, fresh_opt)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(restored.state_dict()[k].numpy(), v.numpy(), rtol=1e-6, atol=1e-7)


class _LossScaler:
    """Stands in for an enabled ``paddle.amp.GradScaler`` (on CPU Paddle disables it: its state is {})."""

    def __init__(self, scale):
        self.state = {'scale': np.array([scale], dtype=np.float32), 'incr_count': 7, 'decr_count': 0}

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        self.state = state


def test_amp_scaler_state_is_saved_and_resumed(tmp_path):
    """timm keeps the loss scale across a resume; restarting it at the initial value would re-run the
    overflow search (skipped steps) after every resume."""
    model = _net()
    saver = CheckpointSaver(model, create_optimizer(model, 'sgd', lr=0.1), checkpoint_dir=str(tmp_path),
                            amp_scaler=_LossScaler(32768.))
    saver.save_checkpoint(0, metric=1.)
    restored = _LossScaler(1024.)
    assert resume_checkpoint(_net(), str(tmp_path / 'last.pdparams'), loss_scaler=restored) == 1
    assert restored.state['scale'].tolist() == [32768.] and restored.state['incr_count'] == 7
    disabled = paddle.amp.GradScaler(init_loss_scaling=1024)  # CPU: disabled, state {} is saved and skipped
    CheckpointSaver(model, create_optimizer(model, 'sgd', lr=0.1), checkpoint_dir=str(tmp_path / 'cpu'),
                    amp_scaler=disabled).save_checkpoint(0, metric=1.)
    assert resume_checkpoint(_net(), str(tmp_path / 'cpu' / 'last.pdparams'), loss_scaler=disabled) == 1


def test_recovery_files(tmp_path):
    _, _, saver = _saver(tmp_path)
    saver.save_recovery(0, batch_idx=10)
    saver.save_recovery(0, batch_idx=20)
    saver.save_recovery(1, batch_idx=5)
    assert _files(tmp_path) == ['recovery-0-20.pdparams', 'recovery-1-5.pdparams']
    assert saver.find_recovery() == str(tmp_path / 'recovery-0-20.pdparams')
    assert load_paddle_file(saver.curr_recovery_file)['epoch'] == 1


def test_bad_arguments(tmp_path):
    model, optimizer, saver = _saver(tmp_path)
    with pytest.raises(ValueError):
        CheckpointSaver(model, optimizer, max_history=0)
    with pytest.raises(ValueError):
        saver.save_checkpoint(-1)


@pytest.mark.parametrize('decreasing', [False, True])
def test_history_matches_timm(tmp_path, decreasing):
    import torch
    from timm.utils import CheckpointSaver as TimmSaver
    metrics = [3., None, 1., 4., 1., None, 5., 9., 2., 6., None, 5.]
    net = torch.nn.Linear(2, 2)
    theirs = TimmSaver(net, torch.optim.SGD(net.parameters(), lr=0.1), checkpoint_dir=str(tmp_path / 'timm'),
                       decreasing=decreasing, max_history=4)
    os.makedirs(tmp_path / 'timm')
    _, _, ours = _saver(tmp_path / 'pimm', max_history=4, decreasing=decreasing)
    for epoch, metric in enumerate(metrics):
        assert ours.save_checkpoint(epoch, metric) == theirs.save_checkpoint(epoch, metric)
        assert [(os.path.basename(p), m) for p, m in ours.checkpoint_files] == \
            [(os.path.basename(p).replace('.pth.tar', '.pdparams'), m) for p, m in theirs.checkpoint_files]
    assert [f.replace('.pdparams', '') for f in _files(tmp_path / 'pimm')] == \
        [f.replace('.pth.tar', '') for f in _files(tmp_path / 'timm')]
