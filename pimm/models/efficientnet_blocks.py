"""EfficientNet / MobileNetV3 building blocks, with timm's names and parameter layout."""
from typing import Callable, Optional

import paddle.nn as nn
import paddle.nn.functional as F

from .layers import BatchNorm2d, DropPath, create_act_layer, create_conv2d, make_divisible

__all__ = ['SqueezeExcite', 'ConvBnAct', 'DepthwiseSeparableConv', 'InvertedResidual']


class SqueezeExcite(nn.Layer):
    """Squeeze-and-excitation: pool, 1x1 reduce (bias), act, 1x1 expand (bias), gate, multiply.

    The reduced width is ``rd_round_fn(in_chs * rd_ratio)`` unless ``rd_channels``
    is given; ``force_act_layer`` overrides the block's activation (Cream: ReLU).
    """

    def __init__(self, in_chs: int, rd_ratio: float = 0.25, rd_channels: Optional[int] = None,
                 act_layer='relu', gate_layer='sigmoid', force_act_layer=None,
                 rd_round_fn: Optional[Callable[[float], int]] = None):
        super().__init__()
        if rd_channels is None:
            rd_round_fn = rd_round_fn or round
            rd_channels = rd_round_fn(in_chs * rd_ratio)
        self.conv_reduce = nn.Conv2D(in_chs, rd_channels, 1)
        self.act1 = create_act_layer(force_act_layer or act_layer)
        self.conv_expand = nn.Conv2D(rd_channels, in_chs, 1)
        self.gate = create_act_layer(gate_layer)

    def forward(self, x):
        x_se = F.adaptive_avg_pool2d(x, 1)
        x_se = self.act1(self.conv_reduce(x_se))
        return x * self.gate(self.conv_expand(x_se))


def _residual(x, shortcut, drop_path: nn.Layer):
    return drop_path(x) + shortcut


class ConvBnAct(nn.Layer):
    """Conv, BN, activation; optional residual when shapes allow (``skip=True``)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 pad_type='', skip: bool = False, act_layer='relu', norm_layer=BatchNorm2d,
                 drop_path_rate: float = 0., **_unused):
        super().__init__()
        self.has_skip = skip and stride == 1 and in_chs == out_chs
        self.conv = create_conv2d(in_chs, out_chs, kernel_size, stride=stride, dilation=dilation,
                                  padding=pad_type)
        self.bn1 = norm_layer(out_chs)
        self.act1 = create_act_layer(act_layer)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv(x)))
        return _residual(x, shortcut, self.drop_path) if self.has_skip else x


class DepthwiseSeparableConv(nn.Layer):
    """Depthwise kxk, BN, act, SE, pointwise 1x1, BN (optional act), residual when shapes allow."""

    def __init__(self, in_chs: int, out_chs: int, dw_kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, pad_type='', noskip: bool = False, pw_kernel_size: int = 1,
                 pw_act: bool = False, act_layer='relu', norm_layer=BatchNorm2d, se_layer=None,
                 drop_path_rate: float = 0., **_unused):
        super().__init__()
        self.has_skip = (stride == 1 and in_chs == out_chs) and not noskip
        self.conv_dw = create_conv2d(in_chs, in_chs, dw_kernel_size, stride=stride, dilation=dilation,
                                     padding=pad_type, depthwise=True)
        self.bn1 = norm_layer(in_chs)
        self.act1 = create_act_layer(act_layer)
        self.se = se_layer(in_chs, act_layer=act_layer) if se_layer else nn.Identity()
        self.conv_pw = create_conv2d(in_chs, out_chs, pw_kernel_size, padding=pad_type)
        self.bn2 = norm_layer(out_chs)
        self.act2 = create_act_layer(act_layer if pw_act else None)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv_dw(x)))
        x = self.se(x)
        x = self.act2(self.bn2(self.conv_pw(x)))
        return _residual(x, shortcut, self.drop_path) if self.has_skip else x


class InvertedResidual(nn.Layer):
    """MobileNetV2/V3 block: pw expand, BN, act, dw kxk, BN, act, SE, pw project, BN, residual."""

    def __init__(self, in_chs: int, out_chs: int, dw_kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, pad_type='', noskip: bool = False, exp_ratio: float = 1.0,
                 exp_kernel_size: int = 1, pw_kernel_size: int = 1, act_layer='relu',
                 norm_layer=BatchNorm2d, se_layer=None, drop_path_rate: float = 0.,
                 round_chs_fn: Callable[[float], int] = make_divisible, **_unused):
        super().__init__()
        mid_chs = round_chs_fn(in_chs * exp_ratio)
        self.has_skip = (in_chs == out_chs and stride == 1) and not noskip
        self.conv_pw = create_conv2d(in_chs, mid_chs, exp_kernel_size, padding=pad_type)
        self.bn1 = norm_layer(mid_chs)
        self.act1 = create_act_layer(act_layer)
        self.conv_dw = create_conv2d(mid_chs, mid_chs, dw_kernel_size, stride=stride, dilation=dilation,
                                     padding=pad_type, depthwise=True)
        self.bn2 = norm_layer(mid_chs)
        self.act2 = create_act_layer(act_layer)
        self.se = se_layer(mid_chs, act_layer=act_layer) if se_layer else nn.Identity()
        self.conv_pwl = create_conv2d(mid_chs, out_chs, pw_kernel_size, padding=pad_type)
        self.bn3 = norm_layer(out_chs)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv_pw(x)))
        x = self.act2(self.bn2(self.conv_dw(x)))
        x = self.se(x)
        x = self.bn3(self.conv_pwl(x))
        return _residual(x, shortcut, self.drop_path) if self.has_skip else x
