"""Eager Paddle: the reference every other runtime is checked against."""
import paddle
import paddle.nn as nn

from .base import Runtime

__all__ = ['DygraphRuntime']


class DygraphRuntime(Runtime):
    """``model(x)`` in eval mode without autograd; the logits stay on the model's device."""

    name = 'dygraph'
    version = paddle.__version__

    def __init__(self, model: nn.Layer):
        self.model = model.eval()

    def __call__(self, images) -> paddle.Tensor:
        with paddle.no_grad():
            return self.model(images if isinstance(images, paddle.Tensor) else paddle.to_tensor(images))
