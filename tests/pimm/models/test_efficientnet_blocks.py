"""pimm EfficientNet blocks against timm's (timm.models._efficientnet_blocks is the oracle).

Each timm block gets random weights and random BatchNorm statistics, is copied onto the
pimm twin with torch2paddle's convert_state_dict (which checks names and shapes), and both
run in eval mode on the same input. Tolerance: rtol=1e-5, atol=1e-5 (float32).
"""
from functools import partial

import numpy as np
import pytest
import timm.models._efficientnet_blocks as tb
import torch
from timm.models._efficientnet_builder import round_channels

from pimm.models import ConvBnAct, DepthwiseSeparableConv, InvertedResidual, SqueezeExcite
from pimm.models.layers import DropPath, make_divisible

pytestmark = pytest.mark.usefixtures('seeded')

RTOL = ATOL = 1e-5
PAD_TYPES = ['', 'same']


def timm_se(**kwargs):
    """Cream's SE on the timm side: hard-sigmoid gate, ReLU forced, channels rounded to 8."""
    return partial(tb.SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer=torch.nn.ReLU,
                   rd_round_fn=round_channels, **kwargs)


def pimm_se(**kwargs):
    return partial(SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer='relu', rd_round_fn=make_divisible,
                   **kwargs)


def expected_paddle_keys(timm_module):
    """timm state-dict keys in Paddle's naming: BN stats renamed, num_batches_tracked dropped."""
    keys = []
    for k in timm_module.state_dict():
        if k.endswith('num_batches_tracked'):
            continue
        keys.append(k.replace('running_mean', '_mean').replace('running_var', '_variance'))
    return keys


def assert_twins(parity, theirs, ours, in_chs, size=(13, 11), seed=0):
    assert list(ours.state_dict()) == expected_paddle_keys(theirs)
    parity.randomize_bn(theirs, seed)
    parity.copy(theirs, ours)
    x = parity.input((2, in_chs) + size, seed)
    y_t, y_p = parity.forward(theirs, ours, x)
    assert y_p.shape == y_t.shape
    np.testing.assert_allclose(y_p, y_t, rtol=RTOL, atol=ATOL)
    return y_t, y_p


# --------------------------------------------------------------------------------------------- SqueezeExcite

@pytest.mark.parametrize('act', ['relu', 'swish', 'hard_swish'])
@pytest.mark.parametrize('rd_ratio', [0.25, 0.5, 1 / 6])
@pytest.mark.parametrize('in_chs', [8, 24, 40, 72])
def test_squeeze_excite_cream_config_matches_timm(parity, in_chs, rd_ratio, act):
    ours = pimm_se(rd_ratio=rd_ratio)(in_chs, act_layer=act)
    theirs = timm_se(rd_ratio=rd_ratio)(in_chs, act_layer=act)
    assert ours.conv_reduce.weight.shape[0] == theirs.conv_reduce.out_channels
    assert ours.act1.__class__.__name__ == 'ReLU'  # forced, whatever the block act
    assert_twins(parity, theirs, ours, in_chs, size=(5, 7))


@pytest.mark.parametrize('in_chs,rd_ratio,rd_channels', [(16, 0.25, None), (30, 0.1, None), (12, 0.25, 5)])
def test_squeeze_excite_defaults_match_timm(parity, in_chs, rd_ratio, rd_channels):
    """Default gate (sigmoid), act (relu) and rounding (python round), or explicit rd_channels."""
    ours = SqueezeExcite(in_chs, rd_ratio=rd_ratio, rd_channels=rd_channels)
    theirs = tb.SqueezeExcite(in_chs, rd_ratio=rd_ratio, rd_channels=rd_channels)
    assert ours.conv_reduce.weight.shape[0] == theirs.conv_reduce.out_channels
    assert_twins(parity, theirs, ours, in_chs, size=(4, 6))


# --------------------------------------------------------------------------------------------- ConvBnAct

@pytest.mark.parametrize('pad_type', PAD_TYPES)
@pytest.mark.parametrize('act', ['relu', 'swish'])
@pytest.mark.parametrize('skip', [False, True])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('kernel_size,in_chs,out_chs', [(1, 8, 8), (3, 8, 8), (3, 6, 10)])
def test_conv_bn_act_matches_timm(parity, kernel_size, in_chs, out_chs, stride, skip, act, pad_type):
    kw = dict(stride=stride, pad_type=pad_type, skip=skip, act_layer=act)
    ours = ConvBnAct(in_chs, out_chs, kernel_size, **kw)
    theirs = tb.ConvBnAct(in_chs, out_chs, kernel_size, norm_layer=torch.nn.BatchNorm2d, **kw)
    assert ours.has_skip == theirs.has_skip
    assert_twins(parity, theirs, ours, in_chs)


# --------------------------------------------------------------------------------------------- DepthwiseSeparable

@pytest.mark.parametrize('pad_type', PAD_TYPES)
@pytest.mark.parametrize('act', ['relu', 'swish'])
@pytest.mark.parametrize('se', [False, True], ids=['nose', 'se'])
@pytest.mark.parametrize('variant', ['skip', 'noskip', 'dsa', 'proj'])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('kernel_size', [3, 5])
def test_depthwise_separable_matches_timm(parity, kernel_size, stride, variant, se, act, pad_type):
    in_chs = 8
    out_chs = 12 if variant == 'proj' else 8
    kw = dict(dw_kernel_size=kernel_size, stride=stride, pad_type=pad_type, act_layer=act,
              noskip=variant in ('noskip', 'dsa'), pw_act=variant == 'dsa')
    ours = DepthwiseSeparableConv(in_chs, out_chs, se_layer=pimm_se(rd_ratio=0.25) if se else None, **kw)
    theirs = tb.DepthwiseSeparableConv(in_chs, out_chs, se_layer=timm_se(rd_ratio=0.25) if se else None,
                                       norm_layer=torch.nn.BatchNorm2d, **kw)
    assert ours.has_skip == theirs.has_skip
    assert ours.has_skip == (stride == 1 and variant == 'skip')
    assert_twins(parity, theirs, ours, in_chs)


# --------------------------------------------------------------------------------------------- InvertedResidual

@pytest.mark.parametrize('pad_type', PAD_TYPES)
@pytest.mark.parametrize('variant', ['skip', 'noskip', 'proj'])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('exp_ratio', [4, 6])
@pytest.mark.parametrize('kernel_size', [3, 5, 7])
def test_inverted_residual_matches_timm(parity, kernel_size, exp_ratio, stride, variant, pad_type):
    in_chs = 8
    out_chs = 12 if variant == 'proj' else 8
    kw = dict(dw_kernel_size=kernel_size, stride=stride, exp_ratio=exp_ratio, pad_type=pad_type,
              act_layer='swish', noskip=variant == 'noskip')
    # SE sized from the expanded (mid) channels, as Cream builds it (se_from_exp=True)
    ours = InvertedResidual(in_chs, out_chs, se_layer=pimm_se(rd_ratio=0.25), **kw)
    theirs = tb.InvertedResidual(in_chs, out_chs, se_layer=timm_se(rd_ratio=0.25), norm_layer=torch.nn.BatchNorm2d,
                                 **kw)
    mid = make_divisible(in_chs * exp_ratio)
    assert ours.conv_dw.weight.shape[0] == theirs.conv_dw.out_channels == mid
    assert ours.se.conv_reduce.weight.shape[0] == theirs.se.conv_reduce.out_channels == make_divisible(mid * 0.25)
    assert ours.has_skip == theirs.has_skip
    assert ours.has_skip == (stride == 1 and variant == 'skip')
    assert_twins(parity, theirs, ours, in_chs)


@pytest.mark.parametrize('pad_type', PAD_TYPES)
@pytest.mark.parametrize('kw', [
    dict(dw_kernel_size=3, exp_ratio=6, act_layer='relu'),  # no SE
    dict(dw_kernel_size=3, exp_ratio=4, dilation=2, act_layer='hard_swish'),
    dict(dw_kernel_size=5, exp_ratio=3, exp_kernel_size=3, pw_kernel_size=3, act_layer='relu6'),
    dict(dw_kernel_size=3, exp_ratio=1, stride=2, act_layer='mish'),
    dict(dw_kernel_size=3, exp_ratio=4, drop_path_rate=0.3, act_layer='swish'),  # drop path is identity in eval
], ids=['nose', 'dilated', 'exp_pw_kernels', 'exp1_s2', 'droppath'])
def test_inverted_residual_variants_match_timm(parity, kw, pad_type):
    ours = InvertedResidual(8, 8, pad_type=pad_type, **kw)
    theirs = tb.InvertedResidual(8, 8, pad_type=pad_type, norm_layer=torch.nn.BatchNorm2d, **kw)
    if kw.get('drop_path_rate'):
        assert isinstance(ours.drop_path, DropPath)
        assert ours.drop_path.drop_prob == theirs.drop_path.drop_prob
    assert_twins(parity, theirs, ours, 8)


@pytest.mark.filterwarnings('ignore:When training, we now always track')
@pytest.mark.parametrize('block', ['ir', 'ds', 'cn'])
def test_blocks_train_mode_batch_statistics_match_timm(parity, block):
    """In training mode BN normalizes with batch statistics: outputs still equal timm's."""
    if block == 'ir':
        ours = InvertedResidual(8, 8, exp_ratio=4, act_layer='swish', se_layer=pimm_se(rd_ratio=0.25))
        theirs = tb.InvertedResidual(8, 8, exp_ratio=4, act_layer='swish', se_layer=timm_se(rd_ratio=0.25))
    elif block == 'ds':
        ours = DepthwiseSeparableConv(8, 8, act_layer='relu', se_layer=pimm_se(rd_ratio=0.25))
        theirs = tb.DepthwiseSeparableConv(8, 8, act_layer='relu', se_layer=timm_se(rd_ratio=0.25))
    else:
        ours = ConvBnAct(8, 8, 3, act_layer='relu', skip=True)
        theirs = tb.ConvBnAct(8, 8, 3, act_layer='relu', skip=True)
    parity.randomize_bn(theirs)
    parity.copy(theirs, ours)
    y_t, y_p = parity.forward(theirs, ours, parity.input((4, 8, 9, 7)), train=True)
    np.testing.assert_allclose(y_p, y_t, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------- layout

@pytest.mark.parametrize('make', [
    lambda m, se, nl: m.SqueezeExcite(16, rd_ratio=0.25),
    lambda m, se, nl: m.ConvBnAct(8, 16, 3, **nl),
    lambda m, se, nl: m.DepthwiseSeparableConv(8, 16, se_layer=se, **nl),
    lambda m, se, nl: m.InvertedResidual(8, 16, exp_ratio=6, se_layer=se, **nl),
    lambda m, se, nl: m.InvertedResidual(8, 8, exp_ratio=4, exp_kernel_size=3, pw_kernel_size=3, **nl),
], ids=['se', 'cn', 'ds_se', 'ir_se', 'ir_kernels'])
def test_parameter_names_and_shapes_match_timm(make):
    import pimm.models as pm
    theirs = make(tb, timm_se(rd_ratio=0.25), dict(norm_layer=torch.nn.BatchNorm2d))
    ours = make(pm, pimm_se(rd_ratio=0.25), {})
    assert list(ours.state_dict()) == expected_paddle_keys(theirs)
    timm_shapes = {k.replace('running_mean', '_mean').replace('running_var', '_variance'): tuple(v.shape)
                   for k, v in theirs.state_dict().items() if not k.endswith('num_batches_tracked')}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == timm_shapes
