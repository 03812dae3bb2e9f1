"""Single entry point for the convolutions the EfficientNet blocks use."""
import paddle.nn as nn

from .conv2d_same import create_conv2d_pad

__all__ = ['create_conv2d']


def create_conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                  padding='', dilation: int = 1, depthwise: bool = False, bias: bool = False) -> nn.Layer:
    """Conv2D with timm's padding rules; ``depthwise=True`` sets groups to the channel count."""
    groups = in_channels if depthwise else 1
    if depthwise and in_channels != out_channels:
        raise ValueError(f'depthwise conv needs in == out channels, got {in_channels} -> {out_channels}')
    return create_conv2d_pad(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                             dilation=dilation, groups=groups, bias=bias)
