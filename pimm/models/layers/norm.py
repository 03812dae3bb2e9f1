"""BatchNorm with PyTorch's momentum convention, so ported configs keep their numbers."""
import paddle.nn as nn

__all__ = ['BatchNorm2d']


class BatchNorm2d(nn.BatchNorm2D):
    """``paddle.nn.BatchNorm2D`` taking ``momentum`` as PyTorch/timm do.

    PyTorch updates ``running = (1 - m) * running + m * batch``; Paddle's
    ``momentum`` weighs the *old* value, so PyTorch's 0.1 is Paddle's 0.9.
    Parameter names stay Paddle's (``weight, bias, _mean, _variance``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, **kwargs):
        super().__init__(num_features, momentum=1. - momentum, epsilon=eps, **kwargs)
        self.torch_momentum = momentum
