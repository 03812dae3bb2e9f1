"""Block-string decoder, EfficientNetBuilder and weight init against timm's _efficientnet_builder."""
import math
from functools import partial

import numpy as np
import paddle
import pytest
import timm.layers as tl
import timm.models._efficientnet_blocks as tb
import timm.models._efficientnet_builder as tbuild
import torch

import pimm.models as pm
from pimm.models import (EfficientNetBuilder, SqueezeExcite, decode_arch_def, decode_block_str,
                         efficientnet_init_weights, init_weight_goog)
from pimm.models.layers import DropPath, make_divisible

pytestmark = pytest.mark.usefixtures('seeded')

BLOCK_STRS = [
    'ds_r1_k3_s1_e1_c16_se0.25',
    'ds_r1_k5_s2_c24',
    'ds_r2_k3_s1_c16_skip',
    'ds_r1_k3_s1_c16_noskip_nhs',
    'dsa_r1_k3_s1_c16',
    'dsa_r1_k3_s2_c32_se0.25_nre',
    'ir_r2_k5_s2_e6_c40_se0.25',
    'ir_r1_k3_s1_e4_c24_nre_noskip',
    'ir_r3_k7_s2_e4_c80_se0.5_nsw',
    'ir_r1_k3_s1_e3_c48_a3_p3_nr6',
    'ir_r4_k5_s1_e6_c112_se0.25_nmi',
    'ir_r1_k3_s1_e0.5_c16',
    'cn_r1_k1_s1_c320_se0.25',
    'cn_r1_k3_s2_c64_skip',
    'cn_r2_k1_s1_c1280_nhs',
]

# what timm's decoder gives for each activation code, in pimm's names
_TIMM_ACT_TO_NAME = {
    tl.get_act_layer('relu'): 'relu', tl.get_act_layer('relu6'): 'relu6',
    tl.get_act_layer('hard_swish'): 'hard_swish', tl.get_act_layer('swish'): 'swish',
    tl.get_act_layer('mish'): 'mish', None: None,
}


def assert_block_args_equal(ours: dict, theirs: dict, where=''):
    ours = dict(ours)
    ours.pop('num_repeat', None)
    assert ours.pop('act_layer') == _TIMM_ACT_TO_NAME[theirs['act_layer']], where
    for key, value in ours.items():
        assert key in theirs, f'{where}: timm has no {key}'
        assert value == theirs[key] and type(value) is type(theirs[key]), f'{where}: {key} {value!r} vs {theirs[key]!r}'


@pytest.mark.parametrize('block_str', BLOCK_STRS)
def test_decode_block_str_matches_timm(block_str):
    theirs, repeats = tbuild._decode_block_str(block_str)
    ours = decode_block_str(block_str)
    assert ours['num_repeat'] == repeats
    assert_block_args_equal(ours, theirs, block_str)
    # every option a block of this type needs is there
    expected = {'ir': {'dw_kernel_size', 'exp_kernel_size', 'pw_kernel_size', 'exp_ratio', 'se_ratio', 'noskip'},
                'ds': {'dw_kernel_size', 'pw_kernel_size', 'se_ratio', 'pw_act', 'noskip'},
                'cn': {'kernel_size', 'skip'}}[ours['block_type'].rstrip('a')]
    assert expected <= set(ours)


def test_decode_block_str_options_in_any_order():
    a = decode_block_str('ir_r2_k5_s2_e6_c40_se0.25_nre_noskip')
    b = decode_block_str('ir_noskip_c40_se0.25_e6_nre_s2_k5_r2')
    assert a == b


ARCH_DEFS = {
    'single': [['ds_r1_k3_s1_e1_c16_se0.25'], ['ir_r2_k5_s2_e6_c40_se0.25'], ['ir_r3_k3_s2_e4_c80_nsw'],
               ['cn_r1_k1_s1_c320_se0.25']],
    # several block strings in one stage (how Cream writes its child nets)
    'multi': [['ds_r1_k3_s1_e1_c16_se0.25'],
              ['ir_r1_k3_s2_e4_c24_se0.25', 'ir_r1_k3_s1_e4_c24_nre_noskip'],
              ['ir_r1_k5_s2_e6_c40_se0.25', 'ir_r1_k5_s1_e4_c40_se0.25', 'ir_r1_k3_s1_e6_c40_se0.25'],
              ['ir_r2_k3_s2_e6_c80_se0.25', 'ir_r1_k7_s1_e4_c80'],
              ['cn_r1_k1_s1_c320_se0.25']],
}


@pytest.mark.parametrize('depth_multiplier', [1.0, 1.2, 1.5, 2.0])
@pytest.mark.parametrize('arch', sorted(ARCH_DEFS))
def test_decode_arch_def_matches_timm(arch, depth_multiplier):
    arch_def = ARCH_DEFS[arch]
    ours = decode_arch_def(arch_def, depth_multiplier=depth_multiplier)
    theirs = tbuild.decode_arch_def(arch_def, depth_multiplier=depth_multiplier)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    for i, (stage_ours, stage_theirs) in enumerate(zip(ours, theirs)):
        for j, (o, t) in enumerate(zip(stage_ours, stage_theirs)):
            assert 'num_repeat' not in o
            assert_block_args_equal(o, t, f'stage {i} block {j}')


def test_decode_arch_def_blocks_are_independent_copies():
    stages = decode_arch_def([['ir_r3_k3_s2_e4_c24']])
    stages[0][0]['stride'] = 1
    assert stages[0][1]['stride'] == 2


@pytest.mark.parametrize('block_str,match', [
    ('xx_r1_k3_s1_c16', r"unknown block type 'xx'.*valid: ir, ds, dsa, cn"),
    ('er_r1_k3_s1_e4_c16', r"unknown block type 'er'"),
    ('ir_r1_k3_s1_c16', r"lacks option\(s\) e"),
    ('ds_r1_s1_c16', r"lacks option\(s\) k"),
    ('cn_k3_s1', r"lacks option\(s\) r, c"),
    ('ir_r1_k3_s1_e4.5.1_c16', r"bad number in block string 'ir_r1_k3_s1_e4.5.1_c16'"),
    ('ir_r1.5_k3_s1_e4_c16', r"bad number"),
    ('ds_r1_k3_s1_c16_se0.2x', r"bad number"),
    ('ir_rx_k3_s1_e4_c16', r"cannot parse option 'rx'"),
    ('ir_r1_k3_s1_e4_c16_nxx', r"unknown activation code 'nxx'.*valid: nre, nr6, nhs, nsw, nmi"),
    ('ir_r0_k3_s1_e4_c16', r'needs r >= 1'),
    ('', r'non-empty str'),
    (None, r'non-empty str'),
])
def test_decode_block_str_malformed_raises(block_str, match):
    with pytest.raises(ValueError, match=match):
        decode_block_str(block_str)


def test_decode_arch_def_rejects_stage_given_as_string():
    with pytest.raises(ValueError, match='list of block strings'):
        decode_arch_def(['ir_r1_k3_s1_e4_c16'])


# --------------------------------------------------------------------------------------------- builder

def timm_builder(pad_type, se_from_exp, drop_path_rate, act='swish'):
    se = partial(tb.SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer=torch.nn.ReLU,
                 rd_round_fn=tbuild.round_channels)
    return tbuild.EfficientNetBuilder(pad_type=pad_type, round_chs_fn=tbuild.round_channels, se_from_exp=se_from_exp,
                                      act_layer=tl.get_act_layer(act), norm_layer=torch.nn.BatchNorm2d, se_layer=se,
                                      drop_path_rate=drop_path_rate)


def pimm_builder(pad_type, se_from_exp, drop_path_rate, act='swish'):
    se = partial(SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer='relu', rd_round_fn=make_divisible)
    return EfficientNetBuilder(pad_type=pad_type, act_layer=act, se_layer=se, se_from_exp=se_from_exp,
                               drop_path_rate=drop_path_rate)


_TIMM_BLOCK = {tb.InvertedResidual: pm.InvertedResidual, tb.DepthwiseSeparableConv: pm.DepthwiseSeparableConv,
               tb.ConvBnAct: pm.ConvBnAct}


@pytest.mark.parametrize('depth_multiplier', [1.0, 1.5])
@pytest.mark.parametrize('se_from_exp', [True, False])
@pytest.mark.parametrize('pad_type', ['', 'same'])
@pytest.mark.parametrize('arch', sorted(ARCH_DEFS))
def test_builder_matches_timm(parity, arch, pad_type, se_from_exp, depth_multiplier):
    in_chs, drop_path_rate = 8, 0.2
    arch_def = ARCH_DEFS[arch]
    t_builder = timm_builder(pad_type, se_from_exp, drop_path_rate)
    theirs = torch.nn.Sequential(*t_builder(in_chs, tbuild.decode_arch_def(arch_def, depth_multiplier)))
    p_builder = pimm_builder(pad_type, se_from_exp, drop_path_rate)
    ours = paddle.nn.Sequential(*p_builder(in_chs, decode_arch_def(arch_def, depth_multiplier)))
    assert p_builder.in_chs == t_builder.in_chs

    # same stages, block types and drop-path rates (linear in the global block index)
    assert len(ours) == len(theirs)
    total = sum(len(s) for s in theirs)
    idx = 0
    for stage_ours, stage_theirs in zip(ours, theirs):
        assert len(stage_ours) == len(stage_theirs)
        for b_ours, b_theirs in zip(stage_ours, stage_theirs):
            assert isinstance(b_ours, _TIMM_BLOCK[type(b_theirs)])
            assert b_ours.has_skip == b_theirs.has_skip
            expected_rate = drop_path_rate * idx / total
            if expected_rate:
                assert isinstance(b_ours.drop_path, DropPath) and isinstance(b_theirs.drop_path, tl.DropPath)
                assert b_ours.drop_path.drop_prob == pytest.approx(b_theirs.drop_path.drop_prob)
                assert b_ours.drop_path.drop_prob == pytest.approx(expected_rate)
            else:
                assert isinstance(b_ours.drop_path, paddle.nn.Identity)
            idx += 1

    parity.randomize_bn(theirs)
    parity.copy(theirs, ours)  # checks every parameter name and shape
    y_t, y_p = parity.forward(theirs, ours, parity.input((2, in_chs, 13, 11)))
    assert y_p.shape == y_t.shape
    np.testing.assert_allclose(y_p, y_t, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('se_from_exp', [True, False])
def test_builder_se_width_with_fractional_expansion_matches_timm(se_from_exp):
    """se_from_exp=False divides the SE ratio by the expansion ratio, whatever it is (timm)."""
    arch_def = [['ir_r1_k3_s1_e0.5_c64_se0.25'], ['ir_r1_k3_s1_e6_c64_se0.25'], ['ds_r1_k3_s1_c64_se0.25']]
    theirs = timm_builder('', se_from_exp, 0.)(64, tbuild.decode_arch_def(arch_def))
    ours = pimm_builder('', se_from_exp, 0.)(64, decode_arch_def(arch_def))
    for stage_ours, stage_theirs in zip(ours, theirs):
        se_o, se_t = stage_ours[0].se, stage_theirs[0].se
        assert se_o.conv_reduce.weight.shape[0] == se_t.conv_reduce.out_channels


@pytest.mark.parametrize('multiplier', [0.75, 1.25])
def test_builder_channel_multiplier_matches_timm(parity, multiplier):
    """A width-scaling round_chs_fn scales the block outputs; IR expansion stays make_divisible(in * e) (timm)."""
    arch_def = ARCH_DEFS['single']
    t_builder = timm_builder('', True, 0.)
    t_builder.round_chs_fn = partial(tbuild.round_channels, multiplier=multiplier)
    theirs = torch.nn.Sequential(*t_builder(16, tbuild.decode_arch_def(arch_def)))
    se = partial(SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer='relu', rd_round_fn=make_divisible)
    p_builder = EfficientNetBuilder(act_layer='swish', se_layer=se, se_from_exp=True,
                                    round_chs_fn=partial(tbuild.round_channels, multiplier=multiplier))
    ours = paddle.nn.Sequential(*p_builder(16, decode_arch_def(arch_def)))
    assert p_builder.in_chs == t_builder.in_chs
    parity.randomize_bn(theirs)
    parity.copy(theirs, ours)  # every shape equal
    y_t, y_p = parity.forward(theirs, ours, parity.input((2, 16, 9, 7)))
    np.testing.assert_allclose(y_p, y_t, rtol=1e-4, atol=1e-4)


def test_builder_act_override_from_block_string(parity):
    arch_def = [['ds_r1_k3_s1_c8_nre'], ['ir_r1_k3_s2_e4_c16_nhs_se0.25']]
    theirs = torch.nn.Sequential(*timm_builder('', True, 0.)(8, tbuild.decode_arch_def(arch_def)))
    ours = paddle.nn.Sequential(*pimm_builder('', True, 0.)(8, decode_arch_def(arch_def)))
    assert type(ours[0][0].act1).__name__ == 'ReLU'
    assert type(ours[1][0].act1).__name__ == 'HardSwish'
    parity.randomize_bn(theirs)
    parity.copy(theirs, ours)
    y_t, y_p = parity.forward(theirs, ours, parity.input((2, 8, 9, 9)))
    np.testing.assert_allclose(y_p, y_t, rtol=1e-5, atol=1e-5)


def test_builder_only_first_block_of_stage_strides():
    stages = pimm_builder('', True, 0.)(8, decode_arch_def([['ir_r3_k3_s2_e4_c16']]))
    strides = [blk.conv_dw._stride for blk in stages[0]]
    assert [list(s) for s in strides] == [[2, 2], [1, 1], [1, 1]]


# --------------------------------------------------------------------------------------------- weight init

def test_init_weight_goog_conv_std():
    """N(0, sqrt(2 / fan_out)), fan_out = k*k*out/groups; biases zero."""
    paddle.seed(0)
    conv = paddle.nn.Conv2D(64, 256, 3)
    init_weight_goog(conv)
    w = conv.weight.numpy()
    std = math.sqrt(2. / (3 * 3 * 256))
    assert abs(w.std() / std - 1) < 0.02  # n = 147456: relative error of the sample std ~ 0.2 %
    assert abs(w.mean()) < 4 * std / math.sqrt(w.size)
    np.testing.assert_array_equal(conv.bias.numpy(), 0.)
    # timm's own init gives the same distribution (oracle for the formula)
    torch.manual_seed(0)
    t_conv = torch.nn.Conv2d(64, 256, 3)
    tbuild._init_weight_goog(t_conv)
    assert abs(t_conv.weight.detach().numpy().std() / std - 1) < 0.02


def test_init_weight_goog_depthwise_conv_uses_group_fan_out():
    paddle.seed(0)
    conv = paddle.nn.Conv2D(512, 512, 5, groups=512, bias_attr=False)
    init_weight_goog(conv)
    std = math.sqrt(2. / (5 * 5 * 512 // 512))
    w = conv.weight.numpy()  # n = 12800: relative error of the sample std ~ 0.6 %
    assert abs(w.std() / std - 1) < 0.03
    torch.manual_seed(0)
    t_conv = torch.nn.Conv2d(512, 512, 5, groups=512, bias=False)
    tbuild._init_weight_goog(t_conv)
    assert abs(t_conv.weight.detach().numpy().std() / std - 1) < 0.03


def test_init_weight_goog_linear_uniform_by_out_features():
    """U(-1/sqrt(out), 1/sqrt(out)); Paddle Linear weights are (in, out)."""
    paddle.seed(0)
    in_f, out_f = 1280, 100
    lin = paddle.nn.Linear(in_f, out_f)
    assert tuple(lin.weight.shape) == (in_f, out_f)
    init_weight_goog(lin)
    w = lin.weight.numpy()
    bound = 1. / math.sqrt(out_f)
    assert np.abs(w).max() <= bound + 1e-7
    assert np.abs(w).max() > 0.99 * bound
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.02
    np.testing.assert_array_equal(lin.bias.numpy(), 0.)
    torch.manual_seed(0)
    t_lin = torch.nn.Linear(in_f, out_f)
    tbuild._init_weight_goog(t_lin)
    t_w = t_lin.weight.detach().numpy()
    assert abs(np.abs(t_w).max() - np.abs(w).max()) < 0.01 * bound


def test_efficientnet_init_weights_whole_network():
    paddle.seed(0)
    stages = pimm_builder('', True, 0.)(8, decode_arch_def(ARCH_DEFS['single']))
    net = paddle.nn.Sequential(*stages, paddle.nn.Flatten(), paddle.nn.Linear(8, 10))
    for p in net.parameters():  # scramble everything first
        p.set_value(paddle.full(p.shape, 3., p.dtype))
    efficientnet_init_weights(net)
    n_conv = n_bn = 0
    for layer in net.sublayers():
        if isinstance(layer, paddle.nn.Conv2D):
            n_conv += 1
            w = layer.weight.numpy()
            assert not np.all(w == 3.)
            std = math.sqrt(2. / (w.shape[2] * w.shape[3] * w.shape[0] // layer._groups))
            assert np.abs(w).max() < 8 * std
            if layer.bias is not None:
                np.testing.assert_array_equal(layer.bias.numpy(), 0.)
        elif isinstance(layer, paddle.nn.BatchNorm2D):
            n_bn += 1
            np.testing.assert_array_equal(layer.weight.numpy(), 1.)
            np.testing.assert_array_equal(layer.bias.numpy(), 0.)
        elif isinstance(layer, paddle.nn.Linear):
            assert np.abs(layer.weight.numpy()).max() <= 1. / math.sqrt(10)
    assert n_conv > 10 and n_bn > 5
