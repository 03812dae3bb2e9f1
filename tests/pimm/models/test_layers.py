"""pimm.models.layers against timm.layers (the oracle) and PyTorch functionals.

All comparisons in float32; tolerances stated per test.
"""
import math

import numpy as np
import paddle
import pytest
import timm.layers as tl
from timm.layers.adaptive_avgmax_pool import adaptive_pool_feat_mult as timm_feat_mult
from timm.layers.padding import get_padding_value as timm_get_padding_value
from timm.layers.padding import is_static_pad as timm_is_static_pad
import torch
import torch.nn.functional as TF

from pimm.models import layers as pl
from pimm.models.layers import (Conv2dSame, DepthwiseConv2d, DropPath, SelectAdaptivePool2d, create_act_layer,
                                create_conv2d, drop_path, get_act_layer, list_act_layers)

pytestmark = pytest.mark.usefixtures('seeded')

RTOL = ATOL = 1e-5


# --------------------------------------------------------------------------------------------- padding helpers

@pytest.mark.parametrize('kernel_size', [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize('stride', [1, 2, 3])
@pytest.mark.parametrize('dilation', [1, 2, 3])
def test_get_padding_and_is_static_pad_match_timm(kernel_size, stride, dilation):
    assert pl.get_padding(kernel_size, stride, dilation) == tl.get_padding(kernel_size, stride, dilation)
    assert pl.is_static_pad(kernel_size, stride, dilation) == timm_is_static_pad(kernel_size, stride, dilation)


@pytest.mark.parametrize('kernel_size', [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize('stride', [1, 2, 3])
@pytest.mark.parametrize('dilation', [1, 2])
def test_get_same_padding_matches_timm(kernel_size, stride, dilation):
    for x in range(1, 24):
        assert pl.get_same_padding(x, kernel_size, stride, dilation) == \
            tl.get_same_padding(x, kernel_size, stride, dilation), x


@pytest.mark.parametrize('padding', ['', 'same', 'SAME', 'valid', 0, 1, 3])
@pytest.mark.parametrize('kernel_size', [1, 3, 4, 5])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('dilation', [1, 2])
def test_get_padding_value_matches_timm(padding, kernel_size, stride, dilation):
    ours = pl.get_padding_value(padding, kernel_size, stride=stride, dilation=dilation)
    theirs = timm_get_padding_value(padding, kernel_size, stride=stride, dilation=dilation)
    assert ours == theirs


def test_get_padding_value_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown padding 'half'"):
        pl.get_padding_value('half', 3)


@pytest.mark.parametrize('divisor', [1, 3, 4, 8, 16])
@pytest.mark.parametrize('min_value', [None, 8, 32])
@pytest.mark.parametrize('round_limit', [0.9, 0.0, 1.0])
def test_make_divisible_matches_timm(divisor, min_value, round_limit):
    values = [0.5, 1, 3.9, 4, 7.5, 8, 11.9, 12, 15.9, 16, 20, 23.99, 24, 36, 40 * 0.25, 96 * 0.25, 100, 123.4, 300,
              1000 / 3]
    for v in values:
        assert pl.make_divisible(v, divisor, min_value, round_limit) == \
            tl.make_divisible(v, divisor, min_value, round_limit), v


@pytest.mark.parametrize('chs', list(range(1, 200, 7)))
@pytest.mark.parametrize('ratio', [0.25, 1 / 6, 0.5, 4, 6])
def test_make_divisible_channel_grid_defaults(chs, ratio):
    assert pl.make_divisible(chs * ratio) == tl.make_divisible(chs * ratio)


def test_to_2tuple():
    assert pl.to_2tuple(3) == (3, 3)
    assert pl.to_2tuple([2, 5]) == (2, 5)
    assert pl.to_2tuple((1, 4)) == (1, 4)


# --------------------------------------------------------------------------------------------- create_conv2d

def _conv_pair(in_chs, out_chs, k, stride, padding, dilation, depthwise, bias=False):
    ours = create_conv2d(in_chs, out_chs, k, stride=stride, padding=padding, dilation=dilation,
                         depthwise=depthwise, bias=bias)
    theirs = tl.create_conv2d(in_chs, out_chs, k, stride=stride, padding=padding, dilation=dilation,
                              depthwise=depthwise, bias=bias)
    return ours, theirs


@pytest.mark.parametrize('size', [(15, 13), (16, 14)], ids=['odd', 'even'])  # >= 13: 'valid' k7 d2
@pytest.mark.parametrize('depthwise', [False, True], ids=['full', 'dw'])
@pytest.mark.parametrize('dilation', [1, 2])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('kernel_size', [1, 3, 5, 7])
@pytest.mark.parametrize('padding', ['', 'same', 'valid'])
def test_create_conv2d_matches_timm(parity, padding, kernel_size, stride, dilation, depthwise, size):
    in_chs = 4
    out_chs = 4 if depthwise else 6
    ours, theirs = _conv_pair(in_chs, out_chs, kernel_size, stride, padding, dilation, depthwise)
    # dynamic 'same' padding exactly when timm needs it (a depthwise conv does it itself)
    dynamic = isinstance(ours, Conv2dSame) or getattr(ours, 'same_padding', False)
    assert dynamic == isinstance(theirs, tl.Conv2dSame)
    assert isinstance(ours, DepthwiseConv2d) == depthwise
    assert ours._groups == theirs.groups
    assert ours.bias is None and theirs.bias is None
    parity.copy(theirs, ours)
    x = parity.input((2, in_chs) + size)
    y_t, y_p = parity.forward(theirs, ours, x)
    assert y_p.shape == y_t.shape
    np.testing.assert_allclose(y_p, y_t, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('padding', ['', 'same'])
def test_create_conv2d_with_bias_matches_timm(parity, padding):
    ours, theirs = _conv_pair(3, 5, 3, 2, padding, 1, False, bias=True)
    assert ours.bias is not None and theirs.bias is not None
    with torch.no_grad():
        theirs.bias.uniform_(-1, 1)
    parity.copy(theirs, ours)
    y_t, y_p = parity.forward(theirs, ours, parity.input((2, 3, 9, 10)))
    np.testing.assert_allclose(y_p, y_t, rtol=RTOL, atol=ATOL)


def test_create_conv2d_depthwise_needs_equal_channels():
    with pytest.raises(ValueError, match='depthwise'):
        create_conv2d(4, 8, 3, depthwise=True)


def _np_conv_single(x, w, stride, pads):
    """Reference 2d correlation of a (H, W) image with explicit (top, bottom, left, right) zero padding."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((top, bottom), (left, right)))
    kh, kw = w.shape
    oh = (xp.shape[0] - kh) // stride + 1
    ow = (xp.shape[1] - kw) // stride + 1
    out = np.zeros((oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            out[i, j] = (xp[i * stride:i * stride + kh, j * stride:j * stride + kw] * w).sum()
    return out


@pytest.mark.parametrize('size,kernel_size,stride,pads', [
    ((6, 8), 3, 2, (0, 1, 0, 1)),   # even input, stride 2: TF puts the single pad row/col bottom/right
    ((7, 9), 3, 2, (1, 1, 1, 1)),   # odd input, stride 2: symmetric
    ((6, 6), 5, 2, (1, 2, 1, 2)),   # total 3: 1 top/left, 2 bottom/right
    ((5, 7), 4, 1, (1, 2, 1, 2)),   # even kernel, stride 1: also asymmetric (dynamic)
    ((8, 5), 2, 2, (0, 0, 0, 1)),   # 8 rows need none, 5 cols need one on the right
])
def test_same_padding_is_tf_style(size, kernel_size, stride, pads):
    """'same' pads the odd pixel at the bottom/right, like TensorFlow (shape and values)."""
    conv = create_conv2d(1, 1, kernel_size, stride=stride, padding='same')
    assert isinstance(conv, Conv2dSame)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((kernel_size, kernel_size)).astype(np.float32)
    conv.weight.set_value(w[None, None])
    x = rng.standard_normal(size).astype(np.float32)
    y = conv(paddle.to_tensor(x[None, None])).numpy()[0, 0]
    assert y.shape == (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    np.testing.assert_allclose(y, _np_conv_single(x, w, stride, pads), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('size', [(6, 8), (7, 9), (5, 4)])
@pytest.mark.parametrize('kernel_size,stride,dilation', [(3, 2, 1), (4, 1, 1), (3, 1, 2), (5, 2, 2), (2, 2, 1)])
def test_pad_same_matches_timm(size, kernel_size, stride, dilation):
    x = np.random.default_rng(0).standard_normal((1, 2) + size).astype(np.float32)
    k, s, d = (kernel_size,) * 2, (stride,) * 2, (dilation,) * 2
    ours = pl.pad_same(paddle.to_tensor(x), k, s, d).numpy()
    theirs = tl.pad_same(torch.from_numpy(x), k, s, d).numpy()
    np.testing.assert_array_equal(ours, theirs)


# --------------------------------------------------------------------------------------------- activations

# pimm name -> timm name (timm does not know the h_* aliases)
_ACT_NAMES = {
    'swish': 'swish', 'silu': 'silu', 'sigmoid': 'sigmoid', 'hard_sigmoid': 'hard_sigmoid',
    'hardsigmoid': 'hardsigmoid', 'h_sigmoid': 'hard_sigmoid', 'hard_swish': 'hard_swish',
    'hardswish': 'hardswish', 'h_swish': 'hard_swish', 'relu': 'relu', 'relu6': 'relu6', 'leaky_relu': 'leaky_relu',
    'elu': 'elu', 'gelu': 'gelu', 'tanh': 'tanh', 'mish': 'mish', 'identity': 'identity', 'ReLU': 'relu',
    'Hard_Swish': 'hard_swish',
}


def _act_input():
    rng = np.random.default_rng(0)
    kinks = np.array([-3., 3., 0., -6., 6.])
    near = np.concatenate([kinks - 1e-3, kinks, kinks + 1e-3, kinks - 1e-6, kinks + 1e-6])
    far = np.array([-30., -15., 15., 30.])
    return np.concatenate([rng.standard_normal(200) * 4, near, far]).astype(np.float32).reshape(1, -1, 1, 1)


@pytest.mark.parametrize('name', sorted(_ACT_NAMES))
def test_activation_by_name_matches_timm(name):
    x = _act_input()
    ours = create_act_layer(name)
    theirs = tl.get_act_layer(_ACT_NAMES[name])()
    y_p = ours(paddle.to_tensor(x)).numpy()
    y_t = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y_p, y_t, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('fn,ref', [
    (pl.swish, TF.silu),
    (pl.hard_sigmoid, TF.hardsigmoid),
    (pl.hard_swish, TF.hardswish),
])
def test_activation_functions_match_torch(fn, ref):
    x = _act_input()
    np.testing.assert_allclose(fn(paddle.to_tensor(x)).numpy(), ref(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_hard_sigmoid_is_mobilenet_v3_gate():
    """relu6(x + 3) / 6: 0.5 at 0, saturates exactly at -3 and 3 (not the slope-0.2 PaddleClas variant)."""
    y = pl.hard_sigmoid(paddle.to_tensor([-4., -3., 0., 1.5, 3., 4.])).numpy()
    np.testing.assert_allclose(y, [0., 0., 0.5, 0.75, 1., 1.], rtol=0, atol=1e-7)


def test_get_act_layer_unknown_name_lists_valid():
    with pytest.raises(ValueError) as info:
        get_act_layer('swishh')
    msg = str(info.value)
    assert "'swishh'" in msg
    for name in list_act_layers():
        assert name in msg


def test_get_act_layer_passthrough_and_empty():
    assert get_act_layer(None) is None
    assert get_act_layer('') is None
    assert get_act_layer(paddle.nn.ReLU) is paddle.nn.ReLU
    assert isinstance(create_act_layer(None), paddle.nn.Identity)
    assert isinstance(create_act_layer(''), paddle.nn.Identity)
    assert isinstance(create_act_layer('relu', inplace=True), paddle.nn.ReLU)  # torch-only kwarg accepted


def test_list_act_layers_resolvable_by_timm():
    for name in list_act_layers():
        assert tl.get_act_layer(name) is not None, name


# --------------------------------------------------------------------------------------------- pooling

@pytest.mark.parametrize('flatten', [False, True])
@pytest.mark.parametrize('output_size', [1, 2])
@pytest.mark.parametrize('pool_type', ['avg', 'max', 'avgmax', 'catavgmax', ''])
def test_select_adaptive_pool_matches_timm(pool_type, output_size, flatten):
    x = np.random.default_rng(0).standard_normal((2, 5, 13, 11)).astype(np.float32)
    ours = SelectAdaptivePool2d(output_size=output_size, pool_type=pool_type, flatten=flatten)
    theirs = tl.SelectAdaptivePool2d(output_size=output_size, pool_type=pool_type, flatten=flatten)
    y_p = ours(paddle.to_tensor(x)).numpy()
    y_t = theirs(torch.from_numpy(x)).numpy()
    assert y_p.shape == y_t.shape
    np.testing.assert_allclose(y_p, y_t, rtol=1e-5, atol=1e-6)
    assert ours.feat_mult() == theirs.feat_mult()
    assert pl.adaptive_pool_feat_mult(pool_type) == timm_feat_mult(pool_type)
    assert ours.is_identity() == theirs.is_identity()


def test_select_adaptive_pool_rejects_unknown_type():
    with pytest.raises(ValueError, match="unknown pool_type 'mean'"):
        SelectAdaptivePool2d(pool_type='mean')


def test_select_adaptive_pool_2d_alias():
    assert pl.SelectAdaptivePool2D is SelectAdaptivePool2d


# --------------------------------------------------------------------------------------------- drop path

def test_drop_path_identity_in_eval_and_at_zero():
    x = paddle.randn([16, 3, 4, 4])
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0., training=True) is x
    layer = DropPath(0.5)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    layer = DropPath(0.)
    layer.train()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


@pytest.mark.parametrize('drop_prob', [0.1, 0.3, 0.7])
@pytest.mark.parametrize('scale_by_keep', [True, False])
def test_drop_path_training_statistics(drop_prob, scale_by_keep):
    """Whole samples are zeroed with probability p, survivors scaled by 1/keep (like timm)."""
    paddle.seed(1234)
    n = 20000
    x = paddle.ones([n, 2, 3, 3])
    layer = DropPath(drop_prob, scale_by_keep=scale_by_keep)
    layer.train()
    y = layer(x).numpy().reshape(n, -1)
    per_sample = y[:, :1]
    assert np.all(y == per_sample), 'a sample was only partly dropped'
    keep = 1. - drop_prob
    survivor = 1. / keep if scale_by_keep else 1.
    values = np.unique(per_sample)
    np.testing.assert_allclose(values, [0., survivor], rtol=1e-6)
    dropped = float((per_sample == 0).mean())
    sigma = math.sqrt(drop_prob * keep / n)
    assert abs(dropped - drop_prob) < 5 * sigma, (dropped, drop_prob)
    if scale_by_keep:  # the expectation is preserved
        assert abs(y.mean() - 1.) < 5 * sigma / keep


def test_drop_path_all_dropped_gives_zeros():
    x = paddle.ones([8, 4])
    y = drop_path(x, 1.0, training=True).numpy()
    np.testing.assert_array_equal(y, np.zeros((8, 4), np.float32))
    t = tl.drop_path(torch.ones(8, 4), 1.0, training=True).numpy()
    np.testing.assert_array_equal(y, t)


def test_drop_path_keeps_dtype_and_shape():
    x = paddle.randn([6, 5])
    y = drop_path(x, 0.5, training=True)
    assert y.shape == x.shape and y.dtype == x.dtype


# --------------------------------------------------------------------------------------------- BatchNorm2d

@pytest.mark.filterwarnings('ignore:When training, we now always track')
@pytest.mark.parametrize('momentum', [0.1, 0.01])
def test_batchnorm_momentum_follows_torch_convention(momentum):
    """pimm.BatchNorm2d takes PyTorch's momentum; one training step updates running_mean and running_var
    as torch does (the unbiased batch variance in the running estimate; tests/pimm/models/test_batch_norm.py
    covers more shapes, recalibration and SyncBatchNorm)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype(np.float32) * 2 + 1
    ours = pl.BatchNorm2d(3, momentum=momentum)
    theirs = torch.nn.BatchNorm2d(3, momentum=momentum)
    ours.train()
    theirs.train()
    y_p = ours(paddle.to_tensor(x)).numpy()
    y_t = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(y_p, y_t, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours._mean.numpy(), theirs.running_mean.numpy(), rtol=1e-6, atol=1e-6)
    n = x.size // x.shape[1]
    biased_var = x.transpose(1, 0, 2, 3).reshape(3, -1).var(axis=1)
    torch_var = theirs.running_var.numpy()
    np.testing.assert_allclose(ours._variance.numpy(), torch_var, rtol=1e-5)
    np.testing.assert_allclose(torch_var, (1 - momentum) + momentum * biased_var * n / (n - 1), rtol=1e-5)
    assert ours.torch_momentum == momentum


def test_batchnorm_eval_matches_torch(parity):
    theirs = parity.randomize_bn(torch.nn.BatchNorm2d(6))
    ours = pl.BatchNorm2d(6)
    parity.copy(theirs, ours)
    y_t, y_p = parity.forward(theirs, ours, parity.input((2, 6, 5, 3)))
    np.testing.assert_allclose(y_p, y_t, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('name,timm_fn', [('swish', TF.silu), ('hard_sigmoid', TF.hardsigmoid),
                                          ('hard_swish', TF.hardswish)])
def test_fused_activations_equal_timms(name, timm_fn):
    """The single Paddle op an export uses equals timm's activation as the written-out form does."""
    from pimm.models.layers.activations import fused_activations
    x = np.concatenate([np.linspace(-8, 8, 4001), [-3., 3., 0.]]).astype('float32').reshape(1, -1, 1, 1)
    expected = timm_fn(torch.from_numpy(x)).numpy()
    model = paddle.nn.Sequential(create_act_layer(name))
    plain = model(paddle.to_tensor(x)).numpy()
    with fused_activations(model):
        assert model[0].fused
        fused = model(paddle.to_tensor(x)).numpy()
    assert not model[0].fused   # dygraph (training) is back to the written-out form
    np.testing.assert_allclose(plain, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused, expected, rtol=1e-6, atol=1e-6)
