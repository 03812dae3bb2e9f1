"""pimm's BatchNorm2d keeps its running statistics as torch.nn.BatchNorm2d does (unbiased running
variance), in training, in BN recalibration (cumulative averaging) and under SyncBatchNorm's conversion."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
import torch

from pimm.models.layers.norm import BatchNorm2d, SyncBatchNorm, convert_sync_batchnorm
from pimm.utils.fused_storage import FusedUnits

# (batch, channels, height, width): 1x1 maps at batch 4 are the board's slices in the deep stages
SHAPES = [(4, 6, 1, 1), (4, 6, 3, 5), (2, 6, 2, 2), (16, 6, 8, 8)]


def _batches(shape, steps=3, seed=0):
    rng = np.random.RandomState(seed)
    return [(rng.randn(*shape) * 2 + 1).astype('float32') for _ in range(steps)]


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('momentum', [0.1, 0.5])
def test_training_updates_the_running_statistics_as_pytorch(shape, momentum):
    ours, ref = BatchNorm2d(shape[1], momentum=momentum), torch.nn.BatchNorm2d(shape[1], momentum=momentum)
    for x in _batches(shape):
        y = ours(paddle.to_tensor(x)).numpy()
        y_ref = ref(torch.from_numpy(x)).detach().numpy()
        assert _rel(y, y_ref) < 1e-5   # normalised with the biased batch variance, as PyTorch does
    assert _rel(ours._mean.numpy(), ref.running_mean.numpy()) < 1e-5
    assert _rel(ours._variance.numpy(), ref.running_var.numpy()) < 1e-5


def test_paddles_own_update_differs_so_the_test_can_fail():
    """Paddle's kernel alone stores the biased variance: 4 values per channel put it 25% off."""
    shape = SHAPES[0]
    plain, ref = paddle.nn.BatchNorm2D(shape[1], momentum=0.9), torch.nn.BatchNorm2d(shape[1])
    for x in _batches(shape):
        plain(paddle.to_tensor(x))
        ref(torch.from_numpy(x))
    assert _rel(plain._variance.numpy(), ref.running_var.numpy()) > 1e-2


def test_cumulative_recalibration_equals_pytorchs_momentum_none():
    """evolve/rank recompute statistics with Paddle momentum (i-1)/i before batch i: PyTorch's momentum=None."""
    ours, ref = BatchNorm2d(6), torch.nn.BatchNorm2d(6, momentum=None)
    ours._mean.set_value(paddle.zeros([6]))
    ours._variance.set_value(paddle.ones([6]))
    for i, x in enumerate(_batches((4, 6, 2, 2), steps=5), start=1):
        ours._momentum = (i - 1.) / i
        with paddle.no_grad():
            ours(paddle.to_tensor(x))
        ref(torch.from_numpy(x))
    assert _rel(ours._mean.numpy(), ref.running_mean.numpy()) < 1e-5
    assert _rel(ours._variance.numpy(), ref.running_var.numpy()) < 1e-5


def test_eval_mode_and_gradients_are_paddles():
    ours, plain = BatchNorm2d(6), paddle.nn.BatchNorm2D(6, momentum=0.9)
    plain.set_state_dict(ours.state_dict())
    x = paddle.to_tensor(_batches((4, 6, 3, 3), 1)[0], stop_gradient=False)
    (ours(x) ** 2).sum().backward()
    g_ours = x.grad.numpy()
    x.clear_gradient()
    (plain(x) ** 2).sum().backward()
    assert _rel(g_ours, x.grad.numpy()) < 1e-6
    ours.eval()
    plain.eval()
    plain.set_state_dict(ours.state_dict())
    assert np.array_equal(ours(x).numpy(), plain(x).numpy())


def test_the_update_stays_in_the_fused_buffers():
    """The correction is in place: statistics living in a FusedUnits buffer stay there."""
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 6, 3), BatchNorm2d(6))
    fused = FusedUnits([[net]], [list(net.parameters())])
    (net(paddle.randn([4, 3, 5, 5])) ** 2).mean().backward()
    fused.check()
    bn = net[1]
    assert net.state_dict()['1._variance'] is bn._variance
    assert fused.values[0]._is_shared_buffer_with(bn._variance)


def test_checkpoint_keys_are_unchanged():
    assert list(BatchNorm2d(4).state_dict()) == list(paddle.nn.BatchNorm2D(4).state_dict())


def test_sync_batchnorm_conversion_keeps_tensors_and_counts_every_rank(monkeypatch):
    """SyncBatchNorm has no CPU kernel; its mechanism is tested with the CPU kernel standing in for the
    synchronised one and a 2-process world whose ranks saw the same batch: the statistics are those of
    the two batches together, so PyTorch's unbiased variance counts 2n values."""
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 6, 1), BatchNorm2d(6))
    tensors = {k: id(v) for k, v in net.state_dict().items()}
    net = convert_sync_batchnorm(net)
    assert isinstance(net[1], SyncBatchNorm) and {k: id(v) for k, v in net.state_dict().items()} == tensors

    def cpu_stand_in(x, mean, variance, weight, bias, is_test, momentum, epsilon, data_format, *flags):
        assert not is_test
        return F.batch_norm(x, mean, variance, weight, bias, training=True, momentum=momentum,
                            epsilon=epsilon, data_format=data_format), mean, variance
    monkeypatch.setattr(paddle._C_ops, 'sync_batch_norm_', cpu_stand_in)
    monkeypatch.setattr(paddle.distributed, 'is_initialized', lambda: True)
    monkeypatch.setattr(paddle.distributed, 'get_world_size', lambda *a: 2)
    x = _batches((4, 3, 1, 1), 1)[0]
    bn = net[1]
    with paddle.no_grad():
        h = net[0](paddle.to_tensor(x)).numpy()
        bn(net[0](paddle.to_tensor(x)))
    both = np.concatenate([h, h])   # what the two ranks' statistics are gathered over
    expected = 0.9 * 1. + 0.1 * both.var(axis=(0, 2, 3), ddof=1)
    assert _rel(bn._variance.numpy(), expected) < 1e-5


@pytest.mark.parametrize('shape', SHAPES)
def test_a_kernel_that_stores_the_unbiased_variance_still_gives_pytorchs(monkeypatch, shape):
    """Issue 23, defect 3: on a GPU Paddle's 4-D BatchNorm calls cuDNN, which stores the unbiased batch variance
    (the CPU kernel and SyncBN's store the biased one). A kernel stub doing what cuDNN does must give
    torch.nn.BatchNorm2d's running statistics: the correction is applied only where the kernel did not."""
    import pimm.models.layers.norm as norm
    real = F.batch_norm

    def cudnn_like(x, running_mean, running_var, *args, momentum=0.9, **kwargs):
        before = running_var.clone()
        out = real(x, running_mean, running_var, *args, momentum=momentum, **kwargs)
        n = x.shape[0] * x.shape[2] * x.shape[3]
        biased = x.transpose([1, 0, 2, 3]).reshape([x.shape[1], -1]).var(axis=1, unbiased=False)
        running_var.set_value(momentum * before + (1 - momentum) * biased * n / (n - 1))
        return out
    monkeypatch.setattr(norm.F, 'batch_norm', cudnn_like)
    monkeypatch.setattr(norm, '_STORES_UNBIASED', {})
    ours, ref = BatchNorm2d(shape[1]), torch.nn.BatchNorm2d(shape[1])
    for x in _batches(shape):
        ours(paddle.to_tensor(x))
        ref(torch.from_numpy(x))
    assert _rel(ours._variance.numpy(), ref.running_var.numpy()) < 1e-5
    assert list(norm._STORES_UNBIASED.values()) == [True]   # learned once from the probe
