"""pimm.models.layers.depthwise_conv: the dense CPU path equals Paddle's grouped convolution
(outputs and every gradient to 1e-5 relative), is taken where it should be, and leaves weights,
keys and static graphs as they were."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import pimm.models.layers.depthwise_conv as depthwise
from pimm.models.layers import DepthwiseConv2d, create_conv2d, depthwise_conv2d

TOL = 1e-5  # relative to the reference tensor's largest magnitude


def _rel(a: paddle.Tensor, b: paddle.Tensor) -> float:
    return float((a - b).abs().max() / (b.abs().max() + 1e-30))


def _forward_backward(fn, x, w, b):
    y = fn(x, w, b)
    upstream = paddle.to_tensor(np.random.RandomState(1).randn(*y.shape).astype('float32'))
    grads = paddle.grad([y], [x, w] + ([b] if b is not None else []), [upstream])
    return [y, *grads]


# (batch, channels, size, kernel, stride, padding, dilation): small maps take the dense path, the
# last two are too large for it and go to Paddle's kernel
SHAPES = [
    (2, 8, 7, 3, 1, 1, 1), (2, 8, 8, 5, 2, 2, 1), (3, 4, 14, 7, 2, 3, 1), (2, 4, 9, 3, 2, 1, 1),
    (2, 4, 6, 3, 1, 2, 2), (1, 3, 1, 3, 1, 1, 1), (2, 5, 16, 5, 1, 2, 1), (4, 6, 4, 3, 1, 0, 1),
    (2, 3, 5, 3, 2, 0, 1), (2, 4, 32, 3, 2, 1, 1), (2, 4, 28, 3, 1, 1, 1),
]


@pytest.mark.parametrize('n, c, h, k, s, p, d', SHAPES)
@pytest.mark.parametrize('bias', [False, True])
def test_equals_paddles_grouped_convolution(n, c, h, k, s, p, d, bias):
    rng = np.random.RandomState(0)
    x = paddle.to_tensor(rng.randn(n, c, h, h).astype('float32'), stop_gradient=False)
    w = paddle.to_tensor(rng.randn(c, 1, k, k).astype('float32'), stop_gradient=False)
    b = paddle.to_tensor(rng.randn(c).astype('float32'), stop_gradient=False) if bias else None
    ours = _forward_backward(lambda x, w, b: depthwise_conv2d(x, w, b, s, p, d), x, w, b)
    ref = _forward_backward(lambda x, w, b: F.conv2d(x, w, b, s, p, d, groups=c), x, w, b)
    for name, a, r in zip(['output', 'grad x', 'grad weight', 'grad bias'], ours, ref):
        assert a.shape == r.shape, name
        assert _rel(a, r) < TOL, (name, _rel(a, r))


def test_small_maps_take_the_dense_path_and_large_ones_paddles_kernel(monkeypatch):
    calls = []
    real = F.conv2d
    monkeypatch.setattr(depthwise.F, 'conv2d', lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    w = paddle.randn([8, 1, 3, 3])
    depthwise_conv2d(paddle.randn([2, 8, 7, 7]), w, None, 1, 1)
    assert calls == []
    depthwise_conv2d(paddle.randn([2, 8, 32, 32]), w, None, 1, 1)
    assert len(calls) == 1
    monkeypatch.setattr(depthwise, 'DENSE_PAIRS_PER_TAP', 0)  # off: always Paddle's kernel
    depthwise_conv2d(paddle.randn([2, 8, 7, 7]), w, None, 1, 1)
    assert len(calls) == 2


def test_asymmetric_padding_goes_to_paddles_kernel(monkeypatch):
    calls = []
    real = F.conv2d
    monkeypatch.setattr(depthwise.F, 'conv2d', lambda *a, **k: calls.append(1) or real(*a, **k))
    x, w = paddle.randn([1, 4, 6, 6]), paddle.randn([4, 1, 3, 3])
    y = depthwise_conv2d(x, w, None, 1, [0, 1, 1, 0])
    assert calls == [1] and _rel(y, real(x, w, None, 1, [0, 1, 1, 0], groups=4)) == 0


def test_create_conv2d_depthwise_keeps_conv2d_keys_and_same_padding():
    layer = create_conv2d(6, 6, 3, stride=2, padding='same', depthwise=True)
    assert isinstance(layer, DepthwiseConv2d) and isinstance(layer, paddle.nn.Conv2D)
    assert list(layer.state_dict()) == ['weight'] and layer.weight.shape == [6, 1, 3, 3]
    x = paddle.randn([2, 6, 7, 7])
    ref = paddle.nn.Conv2D(6, 6, 3, stride=2, groups=6, bias_attr=False)
    ref.weight.set_value(layer.weight)
    from pimm.models.layers import pad_same
    expected = ref(pad_same(x, (3, 3), (2, 2)))
    assert _rel(layer(x), expected) < TOL


def test_a_static_graph_keeps_paddles_kernel():
    """Export (paddle.jit) traces Paddle's convolution: the deployed graph has no gathered matrix."""
    layer = create_conv2d(4, 4, 3, depthwise=True)
    layer.eval()
    x = paddle.randn([1, 4, 7, 7])
    static = paddle.jit.to_static(layer, input_spec=[paddle.static.InputSpec([None, 4, 7, 7], 'float32')],
                                  full_graph=True)
    assert _rel(static(x), layer(x)) < TOL
    program = static.forward.concrete_program.main_program
    ops = {op.name() if callable(getattr(op, 'name', None)) else op.type for op in program.global_block().ops}
    assert ops & {'conv2d', 'depthwise_conv2d', 'pd_op.conv2d', 'pd_op.depthwise_conv2d'}, ops
    assert not ops & {'bmm', 'pd_op.bmm'}, ops


def test_taps_are_built_on_the_inputs_place_and_cached_per_place(monkeypatch):
    """Issue 23, defect 6: a CPU model inside a GPU process (retrain validating ``ema.module`` with
    NET.EMA.FORCE_CPU) must get taps on the CPU, not on the process's current device; the cache keys the place."""
    from pimm.models.layers import depthwise_conv as dw
    created = []
    real = paddle.to_tensor

    def recording(data, *args, **kwargs):
        created.append(kwargs.get('place'))
        return real(data, *args, **kwargs)
    monkeypatch.setattr(dw.paddle, 'to_tensor', recording)
    monkeypatch.setattr(dw, '_TAPS', {})
    x = paddle.randn([2, 4, 6, 6])
    weight = paddle.randn([4, 1, 3, 3])
    dw.depthwise_conv2d(x, weight, padding=1)
    dw.depthwise_conv2d(x, weight, padding=1)
    assert len(created) == 1 and str(created[0]) == str(x.place)   # built once, on the input's place
    assert [key[-1] for key in dw._TAPS] == [str(x.place)]


# (batch, channels, (H, W), (kh, kw), (stride rows, cols), (padding rows, cols), (dilation rows, cols)): every
# pair differs between its two axes, so an axis mix-up in the dense path changes the result
PER_AXIS = [
    (2, 3, (5, 9), (3, 5), (1, 2), (1, 2), (1, 1)),
    (2, 4, (7, 6), (5, 3), (2, 1), (2, 0), (1, 1)),
    (1, 2, (6, 10), (3, 3), (1, 1), (0, 2), (1, 2)),
    (2, 3, (8, 5), (1, 3), (2, 3), (0, 1), (1, 1)),
    (2, 2, (9, 7), (3, 3), (3, 1), (2, 1), (2, 1)),
]


@pytest.mark.parametrize('n, c, size, kernel, stride, padding, dilation', PER_AXIS,
                         ids=lambda v: 'x'.join(map(str, v)) if isinstance(v, tuple) else str(v))
def test_dense_path_matches_torch_on_non_square_maps_and_per_axis_settings(n, c, size, kernel, stride, padding,
                                                                            dilation, monkeypatch):
    """Non-square maps and kernels with a different stride, padding and dilation per axis: the dense path
    (checked to be the one taken) against torch's grouped ``F.conv2d`` in float64, output and the gradients
    of input and weight. Tolerance 1e-5 relative to the reference's largest magnitude: float32 rounding of
    sums of at most 25 products, where a swapped row/column setting moves whole windows (errors of order 1)."""
    import torch
    calls = []
    real = F.conv2d
    monkeypatch.setattr(depthwise.F, 'conv2d', lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.RandomState(3)
    x_np = rng.randn(n, c, *size).astype('float32')
    w_np = rng.randn(c, 1, *kernel).astype('float32')
    x = paddle.to_tensor(x_np, stop_gradient=False)
    w = paddle.to_tensor(w_np, stop_gradient=False)
    y = depthwise_conv2d(x, w, None, stride, padding, dilation)
    assert calls == [], 'the dense path was not taken'
    xt = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w_np, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, None, stride, padding, dilation, groups=c)
    assert list(y.shape) == list(yt.shape)
    upstream = rng.randn(*yt.shape)
    gx, gw = paddle.grad([y], [x, w], [paddle.to_tensor(upstream.astype('float32'))])
    gxt, gwt = torch.autograd.grad([yt], [xt, wt], [torch.tensor(upstream)])
    for name, ours, ref in [('output', y, yt), ('grad x', gx, gxt), ('grad weight', gw, gwt)]:
        ref = ref.detach().numpy()
        error = np.abs(ours.numpy().astype(np.float64) - ref).max() / np.abs(ref).max()
        assert error < TOL, (name, error)
