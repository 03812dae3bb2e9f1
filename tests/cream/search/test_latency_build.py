"""What a latency table measures: every part at its real input shape, exported so that the runtime computes
what the hypernetwork computes, and whole networks exported as ``export`` does. (Timing accuracy is the
``latency`` command's own report, not a test: this machine is shared.)"""
import numpy as np
import paddle
import pytest

from latency import synthetic_table
from Paddle_Cream.models.hypernet import HyperNet
from Paddle_Cream.models.search_space import CHOICES
from Paddle_Cream.search import PathLatency
from Paddle_Cream.search.latency_build import LatencyMeter, LatencySettings, exported_call, measure_model, \
    random_paths
from pimm.inference import missing_packages

STA = [1, 1, 2, 1, 1]
RUNTIMES = ['paddle'] + [pytest.param('onnxruntime', marks=pytest.mark.skipif(
    bool(missing_packages('onnxruntime')), reason='onnxruntime / paddle2onnx not installed'))]


@pytest.fixture(scope='module')
def net():
    paddle.seed(3)
    return HyperNet(STA, num_classes=7, resolution=64).eval()


def test_parts_cover_every_block_at_the_shape_the_network_feeds_it(net):
    parts = LatencyMeter(net, LatencySettings(batch_size=2)).parts()
    assert [p[0] for p in parts][0] == 'stem' and parts[-1][0] == 'head'
    assert len(parts) == 2 + len(CHOICES) * sum(STA)
    shapes = {name: shape for name, _, shape in parts}
    # stem stride 2, first stage stride 1, searched stages strides 2 2 2 1 2 (STAGE_STRIDES), 16->24->40->80->96
    assert shapes['stem'] == [2, 3, 64, 64]
    assert shapes['block 1.0.5'] == [2, 16, 32, 32]
    assert shapes['block 2.0.0'] == [2, 24, 16, 16]
    assert shapes['block 3.0.2'] == [2, 40, 8, 8] and shapes['block 3.1.2'] == [2, 80, 4, 4]
    assert shapes['block 4.0.1'] == [2, 80, 4, 4]
    assert shapes['block 5.0.3'] == [2, 96, 4, 4]
    assert shapes['head'] == [2, 192, 2, 2]
    path = [[0], [5], [0], [2, 1], [1], [3], [0]]
    x = paddle.rand([2, 3, 64, 64])
    with paddle.no_grad():   # stem, the path's blocks and head in a row are the hypernetwork
        y = parts[0][1](x)
        for s, stage in enumerate(path[1:-1]):
            for i, c in enumerate(stage):
                y = dict((n, layer) for n, layer, _ in parts)[f'block {s + 1}.{i}.{c}'](y)
        y = parts[-1][1](y)
        np.testing.assert_allclose(y.numpy(), net(x, path).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('runtime', RUNTIMES)
def test_each_exported_part_computes_what_the_hypernetwork_computes(net, runtime):
    parts = LatencyMeter(net, LatencySettings()).parts()
    exports = []
    try:
        for name, layer, shape in (parts[0], parts[5], parts[-1]):
            out = {}
            call = exported_call(layer, shape, LatencySettings(runtime=runtime), exports)
            x = np.random.RandomState(0).rand(*shape).astype(np.float32)   # the input exported_call feeds
            with paddle.no_grad():
                expected = layer(paddle.to_tensor(x)).numpy()
            out = call()
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max(), err_msg=name)
    finally:
        for e in exports:
            e.close()


def test_random_paths_are_distinct_seeded_and_avoid_the_excluded():
    a = random_paths(STA, 20, seed=5)
    assert a == random_paths(STA, 20, seed=5) and len({str(p) for p in a}) == 20
    b = random_paths(STA, 10, seed=6, exclude=a)
    assert not {str(p) for p in b} & {str(p) for p in a}
    assert all([len(s) for s in p[1:-1]] == STA for p in a + b)


def test_measure_model_times_a_network_with_the_tables_settings(net):
    table = PathLatency(synthetic_table(STA, resolution=64, num_classes=7, runtime='paddle'))
    timing = measure_model(net.extract_child([[0], [1], [2], [3, 4], [5], [0], [0]]), table, warmup=1, repeats=3,
                           rounds=2, min_round_ms=0.0)
    assert timing.calls == 6 and 0 < timing.p10_ms <= timing.median_ms <= timing.p90_ms
    assert LatencySettings.of_table(table).runtime == 'paddle'
