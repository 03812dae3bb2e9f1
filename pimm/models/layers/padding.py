"""timm's padding rules: symmetric PyTorch-style ('') and TF-style 'same'."""
import math
from typing import List, Tuple, Union

import paddle
import paddle.nn.functional as F

__all__ = ['get_padding', 'get_same_padding', 'is_static_pad', 'pad_same', 'get_padding_value']


def get_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """Symmetric padding that keeps ``ceil(in / stride)`` outputs for odd kernels."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def get_same_padding(x: int, k: int, s: int, d: int) -> int:
    """Total padding TF 'SAME' adds along one axis of size ``x``."""
    return max((math.ceil(x / s) - 1) * s + (k - 1) * d + 1 - x, 0)


def is_static_pad(kernel_size: int, stride: int = 1, dilation: int = 1) -> bool:
    """True when 'same' padding does not depend on the input size (and is symmetric)."""
    return stride == 1 and (dilation * (kernel_size - 1)) % 2 == 0


def pad_same(x: paddle.Tensor, k: Tuple[int, int], s: Tuple[int, int], d: Tuple[int, int] = (1, 1),
             value: float = 0.) -> paddle.Tensor:
    """Pad an NCHW tensor the way TF 'SAME' does: the odd pixel goes bottom/right."""
    ih, iw = x.shape[-2:]
    pad_h = get_same_padding(ih, k[0], s[0], d[0])
    pad_w = get_same_padding(iw, k[1], s[1], d[1])
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2],
                  value=value, data_format='NCHW')
    return x


def get_padding_value(padding: Union[str, int], kernel_size: int, stride: int = 1,
                      dilation: int = 1) -> Tuple[Union[int, List[int]], bool]:
    """Resolve a padding spec to ``(static padding, needs dynamic 'same' padding)``.

    ``''`` is the symmetric PyTorch rule, ``'same'`` TF-style (static when it
    can be, dynamic otherwise), ``'valid'`` none, an int is used as is.
    """
    dynamic = False
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == 'same':
            if is_static_pad(kernel_size, stride=stride, dilation=dilation):
                padding = get_padding(kernel_size, stride=stride, dilation=dilation)
            else:
                padding = 0
                dynamic = True
        elif mode == 'valid':
            padding = 0
        elif mode == '':
            padding = get_padding(kernel_size, stride=stride, dilation=dilation)
        else:
            raise ValueError(f"unknown padding '{padding}': expected '', 'same', 'valid' or an int")
    return padding, dynamic
