"""Block-string decoder, stage builder and weight init for EfficientNet-style networks.

A block string reads like ``ir_r1_k3_s2_e4_c24_se0.25``: block type first
(``ir`` inverted residual, ``ds`` depthwise-separable, ``dsa`` ds with a
pointwise activation and no skip, ``cn`` conv-bn-act), then options in any
order: ``r`` repeats, ``k`` kernel, ``a``/``p`` expansion/projection kernel,
``s`` stride, ``e`` expansion ratio, ``c`` output channels, ``se`` SE ratio,
``n`` activation (``re r6 hs sw mi``), ``noskip``/``skip``.
"""
import math
import re
from copy import deepcopy
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence

import paddle
import paddle.nn as nn

from .efficientnet_blocks import ConvBnAct, DepthwiseSeparableConv, InvertedResidual, SqueezeExcite
from .layers import BatchNorm2d, make_divisible

__all__ = ['decode_block_str', 'decode_arch_def', 'EfficientNetBuilder', 'init_weight_goog',
           'efficientnet_init_weights']

BLOCK_TYPES = ('ir', 'ds', 'dsa', 'cn')
_ACT_CODES = {'re': 'relu', 'r6': 'relu6', 'hs': 'hard_swish', 'sw': 'swish', 'mi': 'mish'}
_REQUIRED = {'ir': ('r', 'k', 's', 'e', 'c'), 'ds': ('r', 'k', 's', 'c'), 'dsa': ('r', 'k', 's', 'c'),
             'cn': ('r', 'k', 's', 'c')}


def decode_block_str(block_str: str) -> Dict[str, Any]:
    """Block arguments (a dict, with ``num_repeat``) from one block string."""
    if not isinstance(block_str, str) or not block_str:
        raise ValueError(f'block string must be a non-empty str, got {block_str!r}')
    block_type, *ops = block_str.split('_')
    if block_type not in BLOCK_TYPES:
        raise ValueError(f"unknown block type '{block_type}' in '{block_str}'; valid: {', '.join(BLOCK_TYPES)}")
    opts: Dict[str, str] = {}
    skip = None
    for op in ops:
        if op in ('noskip', 'skip'):
            skip = op == 'skip'
        elif op.startswith('n') and not op.startswith('noskip'):
            if op[1:] not in _ACT_CODES:
                raise ValueError(f"unknown activation code '{op}' in '{block_str}'; valid: "
                                 + ', '.join('n' + c for c in _ACT_CODES))
            opts['n'] = _ACT_CODES[op[1:]]
        else:
            m = re.fullmatch(r'([a-z]+)(\d.*)', op)
            if m is None:
                raise ValueError(f"cannot parse option '{op}' in '{block_str}'")
            opts[m.group(1)] = m.group(2)
    missing = [k for k in _REQUIRED[block_type] if k not in opts]
    if missing:
        raise ValueError(f"block string '{block_str}' lacks option(s) {', '.join(missing)}")
    try:
        args: Dict[str, Any] = dict(block_type=block_type, num_repeat=int(opts['r']), out_chs=int(opts['c']),
                                    stride=int(opts['s']), act_layer=opts.get('n'))
        se_ratio = float(opts.get('se', 0.))
        if block_type == 'ir':
            args.update(dw_kernel_size=int(opts['k']), exp_kernel_size=int(opts.get('a', 1)),
                        pw_kernel_size=int(opts.get('p', 1)), exp_ratio=float(opts['e']),
                        se_ratio=se_ratio, noskip=skip is False)
        elif block_type in ('ds', 'dsa'):
            args.update(dw_kernel_size=int(opts['k']), pw_kernel_size=int(opts.get('p', 1)), se_ratio=se_ratio,
                        pw_act=block_type == 'dsa', noskip=block_type == 'dsa' or skip is False)
        else:
            args.update(kernel_size=int(opts['k']), skip=skip is True)
    except ValueError as e:
        raise ValueError(f"bad number in block string '{block_str}': {e}") from None
    if args['num_repeat'] < 1:
        raise ValueError(f"block string '{block_str}' repeats its block {args['num_repeat']} times; needs r >= 1")
    return args


def _scale_stage_depth(stage_args: List[Dict[str, Any]], repeats: List[int],
                       depth_multiplier: float) -> List[Dict[str, Any]]:
    # as timm: scale the stage's total repeats (ceil), then share them out from the last block string back
    num_repeat = sum(repeats)
    num_repeat_scaled = int(math.ceil(num_repeat * depth_multiplier))
    repeats_scaled = []
    for r in reversed(repeats):
        rs = max(1, round(r / num_repeat * num_repeat_scaled))
        repeats_scaled.append(rs)
        num_repeat -= r
        num_repeat_scaled -= rs
    stage = []
    for args, rep in zip(stage_args, reversed(repeats_scaled)):
        stage.extend(deepcopy(args) for _ in range(rep))
    return stage


def decode_arch_def(arch_def: Sequence[Sequence[str]], depth_multiplier: float = 1.0) -> List[List[Dict[str, Any]]]:
    """Per-stage lists of block arguments, repeats expanded; ``depth_multiplier`` scales each
    stage's total repeats (ceil) and shares them out over its block strings, as timm does."""
    stages = []
    for stage_strs in arch_def:
        if isinstance(stage_strs, str):
            raise ValueError(f'each stage must be a list of block strings, got the string {stage_strs!r}')
        stage_args, repeats = [], []
        for block_str in stage_strs:
            args = decode_block_str(block_str)
            repeats.append(args.pop('num_repeat'))
            stage_args.append(args)
        stages.append(_scale_stage_depth(stage_args, repeats, depth_multiplier))
    return stages


class EfficientNetBuilder:
    """Turns decoded stage arguments into a list of ``nn.Sequential`` stages.

    Only the first block of a stage takes the stage's stride; ``drop_path_rate``
    grows linearly with block depth; ``se_from_exp`` sizes SE from the expanded
    width (else the ratio is divided by the expansion, as in the TF models).
    """

    def __init__(self, pad_type='', act_layer='swish', norm_layer=BatchNorm2d,
                 se_layer: Optional[Callable[..., nn.Layer]] = None, se_from_exp: bool = True,
                 round_chs_fn: Callable[[float], int] = make_divisible, drop_path_rate: float = 0.):
        self.pad_type = pad_type
        self.act_layer = act_layer
        self.norm_layer = norm_layer
        self.se_layer = se_layer if se_layer is not None else SqueezeExcite
        self.se_from_exp = se_from_exp
        self.round_chs_fn = round_chs_fn
        self.drop_path_rate = drop_path_rate
        self.in_chs: Optional[int] = None

    def make_block(self, block_args: Dict[str, Any], in_chs: int, drop_path_rate: float = 0.) -> nn.Layer:
        """One block from decoded arguments, reading ``in_chs`` as its input width."""
        ba = dict(block_args)
        block_type = ba.pop('block_type')
        ba['in_chs'] = in_chs
        ba['out_chs'] = self.round_chs_fn(ba['out_chs'])
        ba['pad_type'] = self.pad_type
        ba['act_layer'] = ba['act_layer'] or self.act_layer
        ba['norm_layer'] = self.norm_layer
        ba['drop_path_rate'] = drop_path_rate
        se_ratio = ba.pop('se_ratio', 0.)
        if block_type != 'cn' and se_ratio:
            if not self.se_from_exp:
                se_ratio /= ba.get('exp_ratio', 1.)
            ba['se_layer'] = partial(self.se_layer, rd_ratio=se_ratio)
        if block_type == 'ir':
            return InvertedResidual(**ba)  # expansion width is make_divisible(in * e), as timm
        if block_type in ('ds', 'dsa'):
            return DepthwiseSeparableConv(**ba)
        return ConvBnAct(**ba)

    def __call__(self, in_chs: int, stages_args: List[List[Dict[str, Any]]]) -> List[nn.Sequential]:
        total = sum(len(s) for s in stages_args)
        idx = 0
        stages = []
        for stage_args in stages_args:
            blocks = []
            for i, ba in enumerate(stage_args):
                ba = dict(ba)
                if i > 0:
                    ba['stride'] = 1
                rate = self.drop_path_rate * idx / total
                block = self.make_block(ba, in_chs, rate)
                in_chs = self.round_chs_fn(ba['out_chs'])
                blocks.append(block)
                idx += 1
            stages.append(nn.Sequential(*blocks))
        self.in_chs = in_chs
        return stages


def init_weight_goog(layer: nn.Layer, name: str = '') -> None:
    """EfficientNet init: conv N(0, sqrt(2/fan_out)), BN (1, 0), linear U(+-1/sqrt(out)), biases 0."""
    if isinstance(layer, nn.Conv2D):
        k_h, k_w = layer.weight.shape[2:]
        fan_out = k_h * k_w * layer.weight.shape[0] // layer._groups
        layer.weight.set_value(paddle.normal(0., math.sqrt(2.0 / fan_out), layer.weight.shape))
        if layer.bias is not None:
            layer.bias.set_value(paddle.zeros_like(layer.bias))
    elif isinstance(layer, nn.BatchNorm2D):
        layer.weight.set_value(paddle.ones_like(layer.weight))
        layer.bias.set_value(paddle.zeros_like(layer.bias))
    elif isinstance(layer, nn.Linear):
        fan_out = layer.weight.shape[1]  # Paddle stores Linear weights as (in, out)
        bound = 1.0 / math.sqrt(fan_out)
        layer.weight.set_value(paddle.uniform(layer.weight.shape, min=-bound, max=bound))
        if layer.bias is not None:
            layer.bias.set_value(paddle.zeros_like(layer.bias))


def efficientnet_init_weights(model: nn.Layer, init_fn: Callable[[nn.Layer, str], None] = init_weight_goog) -> None:
    """Apply ``init_fn`` to every sub-layer of ``model``."""
    for name, layer in model.named_sublayers(include_self=True):
        init_fn(layer, name)
