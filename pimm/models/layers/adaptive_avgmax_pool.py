"""Global pooling selectable by name: avg, max, avgmax, catavgmax (or none)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ['SelectAdaptivePool2d', 'SelectAdaptivePool2D', 'adaptive_pool_feat_mult']

_POOL_TYPES = ('', 'avg', 'max', 'avgmax', 'catavgmax')


def adaptive_pool_feat_mult(pool_type: str = 'avg') -> int:
    """How many times the channel count the pooled output has."""
    return 2 if pool_type == 'catavgmax' else 1


class SelectAdaptivePool2d(nn.Layer):
    """Adaptive pooling to ``output_size`` chosen by ``pool_type``; ``flatten`` gives (N, C)."""

    def __init__(self, output_size: int = 1, pool_type: str = 'avg', flatten: bool = False):
        super().__init__()
        if pool_type not in _POOL_TYPES:
            raise ValueError(f"unknown pool_type '{pool_type}'; valid: {', '.join(p or repr(p) for p in _POOL_TYPES)}")
        self.output_size = output_size
        self.pool_type = pool_type
        self.do_flatten = flatten

    def is_identity(self) -> bool:
        return not self.pool_type

    def forward(self, x):
        if self.pool_type == 'avg':
            x = F.adaptive_avg_pool2d(x, self.output_size)
        elif self.pool_type == 'max':
            x = F.adaptive_max_pool2d(x, self.output_size)
        elif self.pool_type == 'avgmax':
            x = 0.5 * (F.adaptive_avg_pool2d(x, self.output_size) + F.adaptive_max_pool2d(x, self.output_size))
        elif self.pool_type == 'catavgmax':
            x = paddle.concat([F.adaptive_avg_pool2d(x, self.output_size),
                               F.adaptive_max_pool2d(x, self.output_size)], axis=1)
        if self.do_flatten:
            x = paddle.flatten(x, 1)
        return x

    def feat_mult(self) -> int:
        return adaptive_pool_feat_mult(self.pool_type)

    def extra_repr(self):
        return f'pool_type={self.pool_type}, flatten={self.do_flatten}'


SelectAdaptivePool2D = SelectAdaptivePool2d
