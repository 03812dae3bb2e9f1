"""BatchNorm with PyTorch's momentum convention and PyTorch's running-variance update."""
import math
from typing import Dict, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ['BatchNorm2d', 'SyncBatchNorm', 'convert_sync_batchnorm', 'unbias_running_variance',
           'values_per_channel', 'kernel_stores_unbiased']


@paddle.no_grad()
def unbias_running_variance(variance: paddle.Tensor, before: paddle.Tensor, paddle_momentum: float,
                            count: int) -> paddle.Tensor:
    """PyTorch's running variance from Paddle's update ``variance = p * before + (1 - p) * biased``.

    PyTorch puts the unbiased batch variance ``biased * n / (n - 1)`` there instead (``p`` Paddle's
    momentum, ``n`` the values per channel the statistics came from). Since ``(1 - p) * biased =
    variance - p * before``, that is ``variance * n / (n - 1) - before * p / (n - 1)``. A single
    value per channel has no unbiased variance (PyTorch refuses such a batch): left biased.
    """
    if count <= 1:
        return variance
    return variance * (count / (count - 1.)) - before * (paddle_momentum / (count - 1.))


_PROBE = (0., 1., 2., 3.)   # a probe batch's values per channel: biased variance 1.25, unbiased 5/3
_STORES_UNBIASED: Dict[Tuple, bool] = {}


def kernel_stores_unbiased(bn: nn.Layer, x: paddle.Tensor, normalise, replicas: int = 1) -> bool:
    """Whether ``normalise`` (``bn``'s batch-norm kernel for inputs like ``x``) puts the unbiased batch variance
    into the running variance (cuDNN, which Paddle's GPU kernel calls for 4-D input) or the biased one
    (Paddle's CPU kernel, SyncBatchNorm's). Not assumed: learned once per layer type, device, dtype, layout
    and rank from a probe batch of known variance (one host synchronisation), then cached."""
    key = (type(bn).__name__, str(x.place), str(x.dtype), bn._data_format, x.ndim, replicas)
    if key not in _STORES_UNBIASED:
        channels = x.shape[1] if bn._data_format.startswith('NC') else x.shape[-1]
        values = paddle.to_tensor(_PROBE, dtype='float32', place=x.place)
        shape = [len(_PROBE), 1] + [1] * (x.ndim - 2)
        probe = values.reshape(shape).expand([len(_PROBE), channels] + [1] * (x.ndim - 2))
        if not bn._data_format.startswith('NC'):
            probe = probe.transpose([0] + list(range(2, x.ndim)) + [1])
        p = float(bn._momentum)
        with paddle.no_grad():
            mean = paddle.zeros_like(bn._mean.detach())
            variance = paddle.ones_like(bn._variance.detach())
            normalise(probe.astype(x.dtype), mean, variance)
            stored = float(variance.astype('float32').mean()) if p < 1 else 1.
        n = len(_PROBE) * replicas
        biased = sum((v - sum(_PROBE) / len(_PROBE)) ** 2 for v in _PROBE) / len(_PROBE)   # replicas of one probe
        batch = (stored - p) / (1. - p) if p < 1 else biased
        _STORES_UNBIASED[key] = abs(batch - biased * n / (n - 1)) < abs(batch - biased)
    return _STORES_UNBIASED[key]


def _train_with_pytorch_statistics(bn: nn.Layer, x: paddle.Tensor, normalise, replicas: int = 1) -> paddle.Tensor:
    """``normalise(x, mean, variance)`` (a batch-norm kernel updating ``mean``/``variance`` in place) on
    copies of ``bn``'s running statistics, then PyTorch's values written into ``bn``'s own tensors (the
    unbiased batch variance, corrected only when the kernel stored the biased one).

    The kernel's backward keeps the statistics tensors it was given, so they must not change after the
    forward (Paddle checks their version): the copies take the kernel's update; ``bn._mean`` and
    ``bn._variance`` keep their storage (fused per-unit buffers stay shared)."""
    unbiased_already = kernel_stores_unbiased(bn, x, normalise, replicas)
    mean, variance = bn._mean.detach().clone(), bn._variance.detach().clone()
    out = normalise(x, mean, variance)
    unbiased = variance if unbiased_already else unbias_running_variance(
        variance, bn._variance.detach(), float(bn._momentum), values_per_channel(x, bn, replicas))
    with paddle.no_grad():
        bn._mean.copy_(mean, False)
        bn._variance.copy_(unbiased, False)
    return out


def values_per_channel(x: paddle.Tensor, layer: nn.Layer, replicas: int = 1) -> int:
    """How many values each channel's batch statistics of ``layer`` average over ``x`` (times ``replicas``
    for statistics gathered over that many equal batches)."""
    channels = x.shape[1] if layer._data_format.startswith('NC') else x.shape[-1]
    return math.prod(x.shape) // channels * replicas


class BatchNorm2d(nn.BatchNorm2D):
    """``paddle.nn.BatchNorm2D`` that updates its running statistics as ``torch.nn.BatchNorm2d`` does.

    ``momentum`` is PyTorch's: ``running = (1 - m) * running + m * batch``, where Paddle's argument
    weighs the *old* value (PyTorch's 0.1 is Paddle's 0.9). In training the batch is normalised with
    its biased variance (as both do) and the running variance receives the unbiased one (PyTorch;
    Paddle's kernel would store the biased one). Parameter names stay Paddle's (``weight, bias,
    _mean, _variance``), so checkpoints keep their keys.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, **kwargs):
        super().__init__(num_features, momentum=1. - momentum, epsilon=eps, **kwargs)
        self.torch_momentum = momentum

    def forward(self, input: paddle.Tensor) -> paddle.Tensor:
        if not self.training or self._use_global_stats:
            return super().forward(input)

        def normalise(x, mean, variance):
            return F.batch_norm(x, mean, variance, weight=self.weight, bias=self.bias, training=True,
                                momentum=self._momentum, epsilon=self._epsilon, data_format=self._data_format)
        return _train_with_pytorch_statistics(self, input, normalise)


class SyncBatchNorm(nn.SyncBatchNorm):
    """``paddle.nn.SyncBatchNorm`` (GPUs only) with :class:`BatchNorm2d`'s PyTorch running-variance update:
    the statistics are gathered over every process's batch, so ``n`` counts the values of all of them
    (the ranks' batches are equal: the training sampler drops the last partial one)."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.training:
            return super().forward(x)
        import paddle.distributed as dist
        from paddle import _C_ops

        def normalise(x, mean, variance):  # what paddle.nn.SyncBatchNorm.forward runs in dygraph
            return _C_ops.sync_batch_norm_(x, mean, variance, self.weight, self.bias, False, self._momentum,
                                           self._epsilon, self._data_format, False, False)[0]
        replicas = dist.get_world_size() if dist.is_initialized() else 1
        return _train_with_pytorch_statistics(self, x, normalise, replicas)


def convert_sync_batchnorm(layer: nn.Layer) -> nn.Layer:
    """``layer`` with every BatchNorm replaced by :class:`SyncBatchNorm` holding the same weight, bias and
    statistics tensors (so optimizers, EMA and checkpoints built on ``layer`` are unaffected)."""
    if isinstance(layer, nn.layer.norm._BatchNormBase) and not isinstance(layer, SyncBatchNorm):
        sync = SyncBatchNorm(layer._num_features, layer._momentum, layer._epsilon, layer._weight_attr,
                             layer._bias_attr, layer._data_format)
        if layer._weight_attr is not False and layer._bias_attr is not False:
            sync.weight, sync.bias = layer.weight, layer.bias
        sync._mean, sync._variance = layer._mean, layer._variance
        sync.training = layer.training
        layer = sync
    for name, child in list(layer.named_children()):
        layer.add_sublayer(name, convert_sync_batchnorm(child))
    return layer
