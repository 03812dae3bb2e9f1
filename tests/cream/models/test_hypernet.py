"""HyperNet: a path through the hypernetwork equals the extracted ChildNet; paths are checked."""
import numpy as np
import paddle
import pytest

from Paddle_Cream.models import ChildNet
from Paddle_Cream.models.hypernet import HyperNet
from Paddle_Cream.search.flops_table import PathFlops
from pimm.utils import model_complexity

STA_NUM = [2, 1, 3, 2, 1]


@pytest.fixture(scope='module')
def hypernet():
    paddle.seed(0)
    net = HyperNet(STA_NUM, num_classes=7, resolution=48)
    rng = np.random.RandomState(0)
    for layer in net.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):   # non-trivial statistics and affine parameters
            layer._mean.set_value(rng.randn(*layer._mean.shape).astype('float32') * 0.1)
            layer._variance.set_value(rng.uniform(0.5, 1.5, layer._variance.shape).astype('float32'))
            layer.weight.set_value(rng.uniform(0.5, 1.0, layer.weight.shape).astype('float32'))
            layer.bias.set_value(rng.randn(*layer.bias.shape).astype('float32') * 0.1)
    return net.eval()


def random_path(rng):
    return [[0]] + [[int(c) for c in rng.randint(0, 6, n)] for n in STA_NUM] + [[0]]


@pytest.mark.parametrize('seed', range(5))
def test_extracted_child_equals_hypernet_path(hypernet, seed):
    path = random_path(np.random.RandomState(seed))
    child = hypernet.extract_child(path).eval()
    x = paddle.to_tensor(np.random.RandomState(seed).randn(2, 3, 48, 48).astype('float32'))
    with paddle.no_grad():
        np.testing.assert_array_equal(hypernet(x, path).numpy(), child(x).numpy())
    assert child.path == path


def test_child_keeps_its_weights_after_hypernet_changes(hypernet):
    path = random_path(np.random.RandomState(9))
    child = hypernet.extract_child(path)
    before = child.conv_stem.weight.numpy().copy()
    hypernet.conv_stem.weight.set_value(hypernet.conv_stem.weight * 2)
    np.testing.assert_array_equal(child.conv_stem.weight.numpy(), before)
    hypernet.conv_stem.weight.set_value(hypernet.conv_stem.weight / 2)


def test_path_flops_equal_child_macs(hypernet):
    table = PathFlops(hypernet, 224)
    for seed in range(3):
        path = random_path(np.random.RandomState(seed))
        macs, _ = model_complexity(ChildNet(path, num_classes=7), 224)
        assert table.flops(path) == pytest.approx(macs / 1e6, rel=1e-9)


def test_path_flops_bounds_are_the_cheapest_and_dearest_paths():
    import itertools
    small = HyperNet([1, 1, 1, 1, 1], num_classes=7, resolution=96)
    table = PathFlops(small, 96)
    every = [table.flops([[0]] + [[c] for c in choices] + [[0]]) for choices in itertools.product(range(6), repeat=5)]
    assert table.bounds() == pytest.approx((min(every), max(every)), rel=1e-12)


def test_path_parameters_are_exactly_the_childs(hypernet):
    path = random_path(np.random.RandomState(3))
    child = hypernet.extract_child(path)
    trainable = [p for p in child.parameters() if not p.stop_gradient]
    assert sum(int(p.size) for p in hypernet.path_parameters(path)) == sum(int(p.size) for p in trainable)


@pytest.mark.parametrize('bad, words', [
    ([[0], [1], [1], [1, 1, 1], [1, 1], [1], [0]], 'layers per searched stage'),
    ([[0], [1, 1], [1], [1, 1, 1], [1, 1], [6], [0]], 'choice 6'),
    ([[0], [1, 1], [1], [1, 1, 1], [1, 1], [1]], 'list of 7 lists'),
])
def test_invalid_paths_are_rejected(hypernet, bad, words):
    with pytest.raises(ValueError, match=words):
        hypernet(paddle.zeros([1, 3, 48, 48]), bad)


def test_invalid_depths_are_rejected():
    with pytest.raises(ValueError, match='sta_num'):
        HyperNet([1, 1, 0, 1, 1])
