"""Single entry point for the convolutions the EfficientNet blocks use."""
import paddle.nn as nn

from .conv2d_same import create_conv2d_pad
from .depthwise_conv import DepthwiseConv2d
from .padding import get_padding_value

__all__ = ['create_conv2d']


def create_conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                  padding='', dilation: int = 1, depthwise: bool = False, bias: bool = False) -> nn.Layer:
    """Conv2D with timm's padding rules; ``depthwise=True`` gives a :class:`DepthwiseConv2d` (groups =
    channels, the same weights and keys, a faster CPU path)."""
    if not depthwise:
        return create_conv2d_pad(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                 dilation=dilation, bias=bias)
    if in_channels != out_channels:
        raise ValueError(f'depthwise conv needs in == out channels, got {in_channels} -> {out_channels}')
    padding, dynamic = get_padding_value(padding, kernel_size, stride=stride, dilation=dilation)
    return DepthwiseConv2d(in_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias,
                           same_padding=dynamic)
