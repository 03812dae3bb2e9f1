"""Multiply-accumulates of convolutions and linear layers, and parameter counts."""
from typing import Dict, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn

__all__ = ['count_params', 'MacCounter', 'model_complexity', 'format_complexity']


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


class MacCounter:
    """Context manager counting conv + linear MACs per layer of ``model`` during forwards.

    ``counter.macs`` maps ``id(layer)`` to its MACs per image; :meth:`total` sums
    them, optionally over the sub-layers of one part of the model.
    """

    def __init__(self, model: nn.Layer):
        self.model = model
        self.macs: Dict[int, int] = {}
        self._handles = []

    def _hook(self, layer, _inputs, output):
        macs = _conv_macs(layer, output) if isinstance(layer, nn.Conv2D) else _linear_macs(layer, output)
        self.macs[id(layer)] = self.macs.get(id(layer), 0) + macs

    def __enter__(self) -> 'MacCounter':
        self._handles = [m.register_forward_post_hook(self._hook) for m in self.model.sublayers(include_self=True)
                         if isinstance(m, (nn.Conv2D, nn.Linear))]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []

    def total(self, part: Optional[nn.Layer] = None) -> int:
        if part is None:
            return sum(self.macs.values())
        return sum(self.macs.get(id(m), 0) for m in part.sublayers(include_self=True))


def model_complexity(model: nn.Layer, input_size: Union[int, Sequence[int]], **forward_kwargs) -> Tuple[int, int]:
    """``(macs, params)`` of one image through ``model``: conv + linear multiply-accumulates
    (biases, norms and activations not counted) and :func:`count_params`.

    ``input_size`` is the side of a square RGB image or ``(C, H, W)``.
    """
    shape = (3, input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    was_training = model.training
    model.eval()
    try:
        with MacCounter(model) as counter, paddle.no_grad():
            model(paddle.zeros((1,) + shape, dtype='float32'), **forward_kwargs)
    finally:
        model.train() if was_training else model.eval()
    return counter.total(), count_params(model)


def format_complexity(macs: int, params: int) -> str:
    """``'14.51M MACs, 2.687M params'``."""
    return f'{macs / 1e6:.2f}M MACs, {params / 1e6:.3f}M params'
