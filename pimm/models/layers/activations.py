"""Activations by name, as timm resolves them (``get_act_layer('swish')``)."""
from typing import Callable, Optional, Type, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ['swish', 'hard_sigmoid', 'hard_swish', 'Swish', 'HardSigmoid', 'HardSwish',
           'get_act_layer', 'create_act_layer', 'list_act_layers']


def swish(x: paddle.Tensor) -> paddle.Tensor:
    """x * sigmoid(x) (also known as SiLU)."""
    return x * F.sigmoid(x)


def hard_sigmoid(x: paddle.Tensor) -> paddle.Tensor:
    """relu6(x + 3) / 6, the MobileNetV3 / timm gate (not PaddleClas's slope-0.2 variant)."""
    return F.relu6(x + 3.) / 6.


def hard_swish(x: paddle.Tensor) -> paddle.Tensor:
    """x * relu6(x + 3) / 6."""
    return x * hard_sigmoid(x)


class Swish(nn.Layer):
    def forward(self, x):
        return swish(x)


class HardSigmoid(nn.Layer):
    def forward(self, x):
        return hard_sigmoid(x)


class HardSwish(nn.Layer):
    def forward(self, x):
        return hard_swish(x)


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
