"""Conv2D with TF 'SAME' padding computed from the input size at run time."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .helpers import to_2tuple
from .padding import get_padding_value, pad_same

__all__ = ['Conv2dSame', 'create_conv2d_pad']


class Conv2dSame(nn.Conv2D):
    """A Conv2D that pads like TensorFlow's 'SAME' for any input size."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = pad_same(x, to_2tuple(self._kernel_size), to_2tuple(self._stride), to_2tuple(self._dilation))
        return F.conv2d(x, self.weight, self.bias, self._stride, 0, self._dilation, self._groups)


def create_conv2d_pad(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1,
                      padding='', dilation: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2D:
    """A Conv2D (or :class:`Conv2dSame`) honouring timm's padding spec; bias off by default."""
    padding, dynamic = get_padding_value(padding, kernel_size, stride=stride, dilation=dilation)
    layer = Conv2dSame if dynamic else nn.Conv2D
    return layer(in_chs, out_chs, kernel_size, stride=stride, padding=padding, dilation=dilation,
                 groups=groups, bias_attr=None if bias else False)
