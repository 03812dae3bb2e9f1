"""pimm.utils.model_complexity against an independent count on the timm twin.

The oracle: PyTorch forward hooks on every Conv2d / Linear of the timm network,
MACs = output elements per image * in_ch/groups * kh * kw for convs and
out_features * in_features for linears; params = sum(p.numel()) of the timm
network (BN running statistics are buffers there, parameters in Paddle).
"""
from functools import partial

import paddle
import pytest
import timm.layers as tl
import timm.models._efficientnet_blocks as tb
import timm.models._efficientnet_builder as tbuild
import torch

from pimm.models import EfficientNetBuilder, SqueezeExcite, decode_arch_def
from pimm.models.layers import BatchNorm2d, SelectAdaptivePool2d, create_act_layer, create_conv2d, make_divisible
from pimm.utils import count_params, format_complexity, model_complexity

pytestmark = pytest.mark.usefixtures('seeded')

ARCH_DEF = [['ds_r1_k3_s1_e1_c16_se0.25'], ['ir_r2_k3_s2_e4_c24_se0.25'], ['ir_r1_k5_s2_e6_c40_se0.25_nre'],
            ['cn_r1_k1_s1_c64']]


def timm_net(pad_type, num_classes=10, stem=8, head=48):
    se = partial(tb.SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer=torch.nn.ReLU,
                 rd_round_fn=tbuild.round_channels)
    builder = tbuild.EfficientNetBuilder(pad_type=pad_type, se_from_exp=True, act_layer=tl.get_act_layer('swish'),
                                         norm_layer=torch.nn.BatchNorm2d, se_layer=se)
    stages = builder(stem, tbuild.decode_arch_def(ARCH_DEF))
    return torch.nn.Sequential(
        tl.create_conv2d(3, stem, 3, stride=2, padding=pad_type), torch.nn.BatchNorm2d(stem), torch.nn.SiLU(),
        *stages,
        tl.create_conv2d(builder.in_chs, head, 1, padding=pad_type), torch.nn.BatchNorm2d(head), torch.nn.SiLU(),
        tl.SelectAdaptivePool2d(pool_type='avg', flatten=True), torch.nn.Linear(head, num_classes))


def pimm_net(pad_type, num_classes=10, stem=8, head=48):
    se = partial(SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer='relu', rd_round_fn=make_divisible)
    builder = EfficientNetBuilder(pad_type=pad_type, act_layer='swish', se_layer=se, se_from_exp=True)
    stages = builder(stem, decode_arch_def(ARCH_DEF))
    return paddle.nn.Sequential(
        create_conv2d(3, stem, 3, stride=2, padding=pad_type), BatchNorm2d(stem), create_act_layer('swish'),
        *stages,
        create_conv2d(builder.in_chs, head, 1, padding=pad_type), BatchNorm2d(head), create_act_layer('swish'),
        SelectAdaptivePool2d(pool_type='avg', flatten=True), paddle.nn.Linear(head, num_classes))


def torch_macs(model: torch.nn.Module, shape) -> int:
    total = []

    def hook(m, _inputs, out):
        if isinstance(m, torch.nn.Conv2d):
            per_image = out.numel() // out.shape[0]
            total.append(per_image * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
        else:
            total.append(m.out_features * m.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros((1,) + tuple(shape)))
    for h in handles:
        h.remove()
    return sum(total)


def torch_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('input_size', [(3, 13, 11), (3, 16, 16), 24, (3, 33, 17)])
@pytest.mark.parametrize('pad_type', ['', 'same'])
def test_model_complexity_matches_timm_twin(parity, pad_type, input_size):
    theirs, ours = timm_net(pad_type), pimm_net(pad_type)
    parity.copy(theirs, ours)  # proves the twins have identical parameter names and shapes
    shape = (3, input_size, input_size) if isinstance(input_size, int) else input_size
    macs, params = model_complexity(ours, input_size)
    assert macs == torch_macs(theirs, shape)
    assert params == torch_params(theirs)
    assert params == count_params(ours)


def test_bn_running_stats_not_counted():
    ours = pimm_net('')
    bn_stats = sum(int(layer._mean.size) + int(layer._variance.size) for layer in ours.sublayers()
                   if isinstance(layer, paddle.nn.BatchNorm2D))
    assert bn_stats > 0
    every_paddle_parameter = sum(int(p.size) for p in ours.parameters())
    assert count_params(ours) == every_paddle_parameter - bn_stats
    assert count_params(ours) == torch_params(timm_net(''))


@pytest.mark.parametrize('in_chs,out_chs,k,stride,groups,size', [
    (4, 6, 3, 1, 1, (9, 7)), (4, 8, 5, 2, 2, (9, 7)), (6, 6, 3, 2, 6, (10, 10)), (3, 5, 1, 1, 1, (4, 3))])
def test_single_conv_macs_match_torch(in_chs, out_chs, k, stride, groups, size):
    ours = paddle.nn.Conv2D(in_chs, out_chs, k, stride=stride, groups=groups, padding=k // 2)
    theirs = torch.nn.Conv2d(in_chs, out_chs, k, stride=stride, groups=groups, padding=k // 2)
    macs, params = model_complexity(ours, (in_chs,) + size)
    assert macs == torch_macs(theirs, (in_chs,) + size)
    assert params == torch_params(theirs)


def test_linear_macs_match_torch():
    class Head(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc1 = paddle.nn.Linear(12, 20)
            self.fc2 = paddle.nn.Linear(20, 3, bias_attr=False)

        def forward(self, x):
            return self.fc2(self.fc1(x.flatten(1)))

    theirs = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(12, 20), torch.nn.Linear(20, 3, bias=False))
    macs, params = model_complexity(Head(), (3, 2, 2))
    assert macs == torch_macs(theirs, (3, 2, 2)) == 12 * 20 + 20 * 3
    assert params == torch_params(theirs) == 12 * 20 + 20 + 20 * 3


@pytest.mark.parametrize('training', [True, False])
def test_model_complexity_restores_mode_and_removes_hooks(training):
    ours = pimm_net('')
    ours.train() if training else ours.eval()
    first = model_complexity(ours, 16)
    assert ours.training == training
    assert all(layer.training == training for layer in ours.sublayers())
    assert model_complexity(ours, 16) == first  # hooks removed: no double counting


def test_format_complexity():
    assert format_complexity(14_510_000, 2_687_000) == '14.51M MACs, 2.687M params'
