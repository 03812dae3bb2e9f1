"""Multiply-accumulates of convolutions and linear layers, and parameter counts."""
from typing import Sequence, Tuple, Union

import paddle
import paddle.nn as nn

__all__ = ['count_params', 'model_complexity', 'format_complexity']


def count_params(model: nn.Layer) -> int:
    """Learnable parameters, without BatchNorm running statistics (which Paddle stores as parameters)."""
    stats = set()
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, nn.layer.norm._BatchNormBase):
            stats.update(id(p) for p in (layer._mean, layer._variance))
    return sum(int(p.size) for p in model.parameters() if id(p) not in stats)


def _conv_macs(layer: nn.Conv2D, out: paddle.Tensor) -> int:
    k_h, k_w = layer.weight.shape[2:]
    in_per_group = layer.weight.shape[1]
    return int(out[0].size) * in_per_group * k_h * k_w


def _linear_macs(layer: nn.Linear, out: paddle.Tensor) -> int:
    return int(out[0].size) * layer.weight.shape[0]


def model_complexity(model: nn.Layer, input_size: Union[int, Sequence[int]], **forward_kwargs) -> Tuple[int, int]:
    """``(macs, params)`` of one image through ``model``: conv + linear multiply-accumulates
    (biases, norms and activations not counted) and :func:`count_params`.

    ``input_size`` is the side of a square RGB image or ``(C, H, W)``.
    """
    shape = (3, input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    total = [0]

    def hook(layer, _inputs, output):
        if isinstance(layer, nn.Conv2D):
            total[0] += _conv_macs(layer, output)
        else:
            total[0] += _linear_macs(layer, output)

    handles = [m.register_forward_post_hook(hook) for m in model.sublayers(include_self=True)
               if isinstance(m, (nn.Conv2D, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros((1,) + shape, dtype='float32'), **forward_kwargs)
    finally:
        for h in handles:
            h.remove()
        model.train() if was_training else model.eval()
    return total[0], count_params(model)


def format_complexity(macs: int, params: int) -> str:
    """``'14.51M MACs, 2.687M params'``."""
    return f'{macs / 1e6:.2f}M MACs, {params / 1e6:.3f}M params'
