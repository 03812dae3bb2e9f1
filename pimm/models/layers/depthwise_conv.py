"""Depthwise convolution with a faster CPU path for small feature maps.

Paddle's CPU kernel for a grouped convolution loops over images and over groups, so a depthwise
convolution (one group per channel) runs thousands of tiny convolutions per batch; in dygraph its
forward and backward are most of a MobileNet-style train step. For a small map the same
convolution is one batched matrix product per channel: every output pixel is a weighted sum of
input pixels, and those weights form a dense ``(H*W, Ho*Wo)`` matrix gathered from the kernel
(zeros where a pixel is outside the kernel's window). Same mathematics, other summation order:
results agree with ``F.conv2d`` to float32 rounding. Large maps, GPUs and static graphs (export)
keep Paddle's kernel.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .helpers import to_2tuple
from .padding import pad_same

__all__ = ['DepthwiseConv2d', 'depthwise_conv2d', 'DENSE_PAIRS_PER_TAP']

# The dense path does H*W*Ho*Wo multiplications per image and channel where Paddle's kernel does
# kh*kw*Ho*Wo, but in one batched product instead of a loop over images and channels. Measured on
# 2 cores with 2 math threads (fwd+bwd, batch 128): it is faster while H*W*Ho*Wo is at most about
# 3000 per kernel tap, e.g. 8x8 and smaller maps, 16x16 maps with stride 2 or a 5x5 or 7x7 kernel,
# 14x14 with stride 2; slower for a 3x3 kernel on 14x14 or 16x16 with stride 1 and for 32x32 maps.
# 0 turns it off.
DENSE_PAIRS_PER_TAP = 3000


def _output_size(h: int, w: int, k, s, p, d) -> Tuple[int, int]:
    """``(Ho, Wo)`` of a convolution with kernel ``k``, stride ``s``, padding ``p``, dilation ``d`` (pairs)."""
    return ((h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1,
            (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1)


_TAPS: Dict[tuple, Tuple[paddle.Tensor, int, int]] = {}
_MAX_TAPS = 256   # cached (shape, place) entries; the oldest goes first


def _window_taps(h: int, w: int, k: Tuple[int, int], s: Tuple[int, int], p: Tuple[int, int],
                 d: Tuple[int, int], place) -> Tuple[paddle.Tensor, int, int]:
    """``(taps, Ho, Wo)``: ``taps[t]`` is 1 where kernel tap ``t`` joins an (input pixel, output pixel)
    pair, shape ``(kh*kw, H*W*Ho*Wo)``, so that a channel's dense matrix is its kernel times ``taps``.
    Built on ``place`` (the input's: a CPU model inside a GPU process must not get GPU taps) and cached
    by shape and place."""
    key = (h, w, k, s, p, d, str(place))
    if key not in _TAPS:
        if len(_TAPS) >= _MAX_TAPS:
            del _TAPS[next(iter(_TAPS))]
        _TAPS[key] = _build_taps(h, w, k, s, p, d, place)
    return _TAPS[key]


def _build_taps(h: int, w: int, k, s, p, d, place) -> Tuple[paddle.Tensor, int, int]:
    ho, wo = _output_size(h, w, k, s, p, d)
    taps = np.zeros((k[0] * k[1], h, w, ho, wo), dtype=np.float32)
    for i in range(k[0]):
        rows = np.arange(ho) * s[0] - p[0] + i * d[0]          # input row read by tap row i
        keep_r = (rows >= 0) & (rows < h)
        for j in range(k[1]):
            cols = np.arange(wo) * s[1] - p[1] + j * d[1]
            keep_c = (cols >= 0) & (cols < w)
            oh, ow = np.nonzero(keep_r[:, None] & keep_c[None, :])
            taps[i * k[1] + j, rows[oh], cols[ow], oh, ow] = 1.
    return paddle.to_tensor(taps.reshape(k[0] * k[1], -1), place=place), ho, wo


def _symmetric_padding(padding: Union[int, Sequence[int]]) -> Optional[Tuple[int, int]]:
    if isinstance(padding, int):
        return padding, padding
    if isinstance(padding, (list, tuple)) and len(padding) == 2 and all(isinstance(v, int) for v in padding):
        return tuple(padding)
    return None  # asymmetric or string padding: Paddle's kernel handles it


def _dense_depthwise(x: paddle.Tensor, weight: paddle.Tensor, k, s, p, d) -> paddle.Tensor:
    n, c, h, w = x.shape
    taps, ho, wo = _window_taps(h, w, k, s, p, d, x.place)
    # a matrix product, not a gather: its backward is a matrix product too, not a scatter-add
    matrix = paddle.matmul(weight.reshape([c, k[0] * k[1]]), taps).reshape([c, h * w, ho * wo])
    per_channel = x.transpose([1, 0, 2, 3]).reshape([c, n, h * w])
    out = paddle.bmm(per_channel, matrix)                     # (C, N, Ho*Wo)
    return out.reshape([c, n, ho, wo]).transpose([1, 0, 2, 3])


def _dense_is_faster(h: int, w: int, k, s, p, d) -> bool:
    ho, wo = _output_size(h, w, k, s, p, d)
    return h * w * ho * wo <= DENSE_PAIRS_PER_TAP * k[0] * k[1]


@paddle.jit.not_to_static  # a static graph (export) runs the Python below as is: Paddle's kernel
def depthwise_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: Optional[paddle.Tensor] = None,
                     stride=1, padding=0, dilation=1) -> paddle.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation, groups=C)`` for ``weight`` of shape
    ``(C, 1, kh, kw)``, by the dense path on CPU in dygraph for maps with at most
    :data:`DENSE_PAIRS_PER_TAP` (input pixel, output pixel) pairs per kernel tap."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    pad = _symmetric_padding(padding)
    if (pad is not None and paddle.in_dynamic_mode() and x.place.is_cpu_place() and x.dtype == paddle.float32
            and weight.shape[0] == c):
        k, s, d = to_2tuple(weight.shape[2:]), to_2tuple(stride), to_2tuple(dilation)
        if _dense_is_faster(h, w, k, s, pad, d):
            out = _dense_depthwise(x, weight, k, s, pad, d)
            return out if bias is None else out + bias.reshape([1, c, 1, 1])
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups=c)


class DepthwiseConv2d(nn.Conv2D):
    """A depthwise ``nn.Conv2D`` (the same parameters and state-dict keys) computed by
    :func:`depthwise_conv2d`; ``same_padding`` pads like TF 'SAME' for any input size."""

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, padding: Union[int, Sequence[int]] = 0,
                 dilation: int = 1, bias: bool = False, same_padding: bool = False):
        super().__init__(channels, channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=channels, bias_attr=None if bias else False)
        self.same_padding = same_padding

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        padding = self._padding
        if self.same_padding:
            x = pad_same(x, to_2tuple(self._kernel_size), to_2tuple(self._stride), to_2tuple(self._dilation))
            padding = 0
        return depthwise_conv2d(x, self.weight, self.bias, self._stride, padding, self._dilation)
