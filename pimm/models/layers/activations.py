"""Activations by name, as timm resolves them (``get_act_layer('swish')``).

``swish``, ``hard_sigmoid`` and ``hard_swish`` are written out of elementary ops, as timm writes them.
Inside :func:`fused_activations` (what :func:`pimm.inference.save_inference_model` exports under) a
network's activation layers are Paddle's single ops instead (``swish``, ``hardsigmoid``,
``hardswish``): the same function to float32 rounding, and half the ops in an exported graph, which
Paddle Inference's oneDNN passes then fold into the convolutions (bench/predictor_settings.py).
"""
import contextlib
from typing import Callable, Iterator, Optional, Type, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ['swish', 'hard_sigmoid', 'hard_swish', 'Swish', 'HardSigmoid', 'HardSwish',
           'get_act_layer', 'create_act_layer', 'list_act_layers', 'fused_activations']

def swish(x: paddle.Tensor, fused: bool = False) -> paddle.Tensor:
    """x * sigmoid(x) (also known as SiLU); ``fused``: as Paddle's one ``swish`` op."""
    return F.swish(x) if fused else x * F.sigmoid(x)


def hard_sigmoid(x: paddle.Tensor, fused: bool = False) -> paddle.Tensor:
    """relu6(x + 3) / 6, the MobileNetV3 / timm gate (not PaddleClas's slope-0.2 variant); ``fused``: as
    Paddle's one ``hardsigmoid`` op with that slope and offset."""
    return F.hardsigmoid(x, slope=1 / 6, offset=0.5) if fused else F.relu6(x + 3.) / 6.


def hard_swish(x: paddle.Tensor, fused: bool = False) -> paddle.Tensor:
    """x * relu6(x + 3) / 6; ``fused``: as Paddle's one ``hardswish`` op."""
    return F.hardswish(x) if fused else x * hard_sigmoid(x)


class _Activation(nn.Layer):
    fused = False   # set per layer by fused_activations (an attribute: jit.save reads it when it traces)


class Swish(_Activation):
    def forward(self, x):
        return swish(x, self.fused)


class HardSigmoid(_Activation):
    def forward(self, x):
        return hard_sigmoid(x, self.fused)


class HardSwish(_Activation):
    def forward(self, x):
        return hard_swish(x, self.fused)


@contextlib.contextmanager
def fused_activations(model: nn.Layer) -> Iterator[nn.Layer]:
    """Within: ``model``'s Swish, HardSigmoid and HardSwish layers run as one Paddle op each (for
    exported graphs; see the module doc)."""
    layers = [m for m in model.sublayers(include_self=True) if isinstance(m, _Activation)]
    for layer in layers:
        layer.fused = True
    try:
        yield model
    finally:
        for layer in layers:
            layer.fused = False


_ACT_LAYERS = {
    'swish': Swish,
    'silu': Swish,
    'sigmoid': nn.Sigmoid,
    'hard_sigmoid': HardSigmoid,
    'hard_swish': HardSwish,
    'relu': nn.ReLU,
    'relu6': nn.ReLU6,
    'leaky_relu': nn.LeakyReLU,
    'elu': nn.ELU,
    'gelu': nn.GELU,
    'tanh': nn.Tanh,
    'mish': nn.Mish,
    'identity': nn.Identity,
}
_ALIASES = {'hardsigmoid': 'hard_sigmoid', 'hardswish': 'hard_swish', 'h_sigmoid': 'hard_sigmoid',
            'h_swish': 'hard_swish'}

LayerSpec = Optional[Union[str, Type[nn.Layer], Callable[..., nn.Layer]]]


def list_act_layers():
    """Names :func:`get_act_layer` accepts."""
    return sorted(_ACT_LAYERS)


def get_act_layer(name: LayerSpec) -> Optional[Callable[..., nn.Layer]]:
    """Resolve an activation given by name (or pass a class/factory through)."""
    if name is None or not isinstance(name, str):
        return name
    key = _ALIASES.get(name.lower(), name.lower())
    if not key:
        return None
    if key not in _ACT_LAYERS:
        raise ValueError(f"unknown activation '{name}'; valid: {', '.join(list_act_layers())}")
    return _ACT_LAYERS[key]


def create_act_layer(name: LayerSpec, **kwargs) -> nn.Layer:
    """An activation layer instance (``nn.Identity`` when ``name`` is None or empty)."""
    kwargs.pop('inplace', None)  # PyTorch-only argument, accepted for timm compatibility
    layer = get_act_layer(name)
    if layer is None:
        return nn.Identity()
    return layer(**kwargs)
