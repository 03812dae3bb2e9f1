"""FusedUnits: tensors and gradients become views of one aligned buffer per unit, numerics unchanged."""
import copy

import numpy as np
import paddle
import pytest

from Paddle_Cream.models.hypernet import HyperNet
from pimm.optim.optim_factory import param_groups_weight_decay
from pimm.utils.fused_storage import ALIGN_ELEMENTS, FusedUnits, aligned_offsets, assign_in_place

PATH = [[0], [1], [2], [3, 4], [5], [0], [0]]


def _net():
    paddle.seed(0)
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Flatten(),
                                paddle.nn.Linear(16, 2))


def _fused(net):
    groups = param_groups_weight_decay(net, 1e-4)
    return FusedUnits([[net[0], net[1]], [net[3]]], [g['params'] for g in groups])


def _grads(net, path=None, x=None):
    x = paddle.to_tensor(np.random.RandomState(0).randn(4, 3, 32 if path else 4, 32 if path else 4), 'float32')
    out = net(x, path) if path else net(x)
    (out * out).mean().backward()
    return {k: p.grad.numpy().copy() for k, p in net.named_parameters() if p.grad is not None}


def test_values_and_gradients_live_in_the_unit_buffers():
    net = _net()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    fused = _fused(net)
    fused.check()
    assert len(fused) == 2 and fused.unit_of(net[3].weight) == 1 and fused.holds(net[1]._mean)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])  # values kept
    for offsets in fused.offsets:
        assert all(o % ALIGN_ELEMENTS == 0 for o in offsets)
    fused.values[1].scale_(2.)  # the buffer is the storage of the layer's tensors
    np.testing.assert_array_equal(net[3].weight.numpy(), 2 * before['3.weight'])
    grads = _grads(net)
    position = [id(t) for t in fused.tensors[1]].index(id(net[3].weight))
    start = fused.offsets[1][position]
    flat = fused.grads[1].numpy()[start:start + net[3].weight.size]
    np.testing.assert_array_equal(flat, grads['3.weight'].ravel())
    fused.zero_grads([1])
    assert not fused.grads[1].numpy().any() and fused.grads[0].numpy().any()
    fused.check()
    # the stored group order: no-decay tensors first within each unit
    assert [g for g, _, _ in fused.group_slices(0)] == [0, 1]


def test_a_fused_hypernetwork_trains_bit_identically():
    """Aligned views keep CPU kernels on their usual paths: unaligned ones gave float32-rounding-different
    gradients (measured up to 1.3e-5 on a stem weight of magnitude 10)."""
    net = HyperNet([1, 1, 2, 1, 1], num_classes=10, resolution=32)
    twin = copy.deepcopy(net)
    groups = param_groups_weight_decay(net, 1e-4)
    FusedUnits(net.units(), [g['params'] for g in groups]).check()
    ours, theirs = _grads(net, PATH), _grads(twin, PATH)
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
    for k, v in twin.state_dict().items():  # BN running statistics too
        np.testing.assert_array_equal(net.state_dict()[k].numpy(), v.numpy(), err_msg=k)


def test_clear_gradient_detaches_and_check_says_so():
    net = _net()
    fused = _fused(net)
    net[0].weight.clear_gradient(True)
    _grads(net)
    with pytest.raises(RuntimeError, match='detached'):
        fused.check()


def test_writes_keep_the_tensors_in_their_buffers():
    net = _net()
    fused = _fused(net)
    assign_in_place(net[3].weight, np.ones([16, 2], 'float32'))
    assign_in_place(net[1]._mean, paddle.full([4], 3.))
    net[0].weight.set_value(np.zeros([4, 3, 3, 3], 'float32'))  # same device: written in place
    net[1]._variance.set_value(paddle.full([4], 2.))
    fused.check()
    assert net[1]._mean.numpy().tolist() == [3.] * 4 and net[1]._variance.numpy().tolist() == [2.] * 4
    assert float(fused.values[1].sum()) >= 32 and not net[0].weight.numpy().any()


def test_bad_units_are_refused():
    net = _net()
    groups = [g['params'] for g in param_groups_weight_decay(net, 1e-4)]
    with pytest.raises(ValueError, match='belongs to units'):
        FusedUnits([[net[0]], [net[0], net[3]]], groups)
    with pytest.raises(ValueError, match='in no group'):
        FusedUnits([[net[0]]], [[net[3].weight]])


def test_aligned_offsets():
    assert aligned_offsets([3, 64, 1], align=64) == ([0, 64, 128], 192)
    assert aligned_offsets([], align=8) == ([], 0)
