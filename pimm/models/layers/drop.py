"""Stochastic depth (drop path) per sample."""
import paddle
import paddle.nn as nn

__all__ = ['drop_path', 'DropPath']


def drop_path(x: paddle.Tensor, drop_prob: float = 0., training: bool = False,
              scale_by_keep: bool = True) -> paddle.Tensor:
    """Zero whole samples of a residual branch with probability ``drop_prob`` while training."""
    if drop_prob == 0. or not training:
        return x
    keep_prob = 1. - drop_prob
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    mask = paddle.bernoulli(paddle.full(shape, keep_prob, dtype=x.dtype))
    if keep_prob > 0. and scale_by_keep:
        mask = mask / keep_prob
    return x * mask


class DropPath(nn.Layer):
    """Layer form of :func:`drop_path`."""

    def __init__(self, drop_prob: float = 0., scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)

    def extra_repr(self):
        return f'drop_prob={self.drop_prob}'
