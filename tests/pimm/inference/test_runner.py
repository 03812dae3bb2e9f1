"""INFERENCE: the runner checks every runtime against dygraph on the first batch, serves with the
fastest that passed (auto) or the one asked for, and falls back with one warning line."""
import os
import time

import numpy as np
import paddle
import pytest

import Paddle_Cream  # noqa: F401
import pimm
from pimm.inference import CPU_RUNTIMES, PARITY_RTOL, RuntimeUnavailableError, create_runner, \
    relative_difference, threads_beside_loader
from pimm.inference import factory


@pytest.fixture(scope='module')
def model_and_batch():
    paddle.seed(0)
    model = pimm.create_model('cream_14', num_classes=10).eval()
    x = paddle.to_tensor(np.random.RandomState(0).randn(6, 3, 64, 64).astype('float32'))
    with paddle.no_grad():
        expected = model(x).numpy()
    return model, x, expected


def _wrap(monkeypatch, change):
    """create_runtime whose runtimes named in ``change`` pass their logits through ``change[name]``."""
    real = factory.create_runtime

    def create(name, exported, threads=0):
        runtime = real(name, exported, threads)
        if name not in change:
            return runtime

        class Changed(type(runtime)):
            def __call__(self, images):
                return change[name](super().__call__(images))
        runtime.__class__ = Changed
        return runtime
    monkeypatch.setattr(factory, 'create_runtime', create)


def _run(model, x, kind, lines):
    runner = create_runner(model, 64, kind, threads=1, log=lines.append)
    first = runner(x)
    second = runner(x[:2])
    runner.close()
    return runner, np.asarray(first.numpy() if hasattr(first, 'numpy') else first), second


def test_auto_serves_with_a_runtime_that_equals_dygraph(model_and_batch):
    model, x, expected = model_and_batch
    lines = []
    runner, first, second = _run(model, x, 'auto', lines)
    assert runner.name in CPU_RUNTIMES + ('dygraph',)
    assert relative_difference(first, expected)['max_rel'] <= PARITY_RTOL
    assert relative_difference(second, expected[:2])['max_rel'] <= PARITY_RTOL
    for name in CPU_RUNTIMES:   # every installed runtime was checked
        assert runner.report[name]['max_rel'] <= PARITY_RTOL
    assert runner.name == min(runner.report['timing_ms'], key=runner.report['timing_ms'].get)
    assert [line for line in lines if line.startswith('inference: ')] == [lines[-1]]
    assert f'inference: {runner.name}' in lines[-1] and 'fastest of' in lines[-1]


def test_auto_takes_the_fastest(monkeypatch, model_and_batch):
    model, x, expected = model_and_batch
    slow = lambda out: (time.sleep(0.15), out)[1]   # noqa: E731
    _wrap(monkeypatch, {'openvino': slow, 'paddle': slow})
    lines = []
    runner, first, _ = _run(model, x, 'auto', lines)
    assert runner.name == 'onnxruntime', lines
    assert 'openvino' not in runner.report['timing_ms'] or runner.report['timing_ms']['openvino'] > 150


def test_a_runtime_that_differs_is_not_used(monkeypatch, model_and_batch):
    model, x, expected = model_and_batch
    _wrap(monkeypatch, {'openvino': lambda out: out * 1.01, 'onnxruntime': lambda out: out * np.nan})
    lines = []
    runner, first, second = _run(model, x, 'auto', lines)
    assert runner.name in ('paddle', 'dygraph')
    assert relative_difference(first, expected)['max_rel'] <= PARITY_RTOL
    warnings = [line for line in lines if line.startswith('warning:')]
    assert len(warnings) == 2
    assert "INFERENCE openvino is not used: its logits differ from dygraph's by 1.0e-02" in warnings[0]
    assert 'INFERENCE onnxruntime is not used' in warnings[1] and 'nan' in warnings[1]


def test_a_named_runtime_that_differs_falls_back_to_dygraph(monkeypatch, model_and_batch):
    model, x, expected = model_and_batch
    _wrap(monkeypatch, {'paddle': lambda out: out + 1.0})
    lines = []
    runner, first, second = _run(model, x, 'paddle', lines)
    assert runner.name == 'dygraph'
    # dygraph's own logits (CPU kernels may split work differently from one call to the next)
    assert relative_difference(first, expected)['max_rel'] <= 1e-5
    assert lines[0].startswith('warning: INFERENCE paddle is not used')
    assert lines[-1] == 'inference: dygraph (no exported runtime passed the check)'


def test_a_failing_export_is_one_warning_and_the_others_serve(monkeypatch, model_and_batch):
    model, x, expected = model_and_batch

    def broken(*args, **kwargs):
        raise pimm.inference.OnnxExportError('paddle2onnx could not convert the network at opset 13: boom')
    monkeypatch.setattr(pimm.inference.exported, 'export_onnx', broken)
    lines = []
    runner, first, _ = _run(model, x, 'auto', lines)
    assert runner.name in ('paddle', 'dygraph')
    warnings = [line for line in lines if line.startswith('warning:')]
    assert warnings == [f'warning: INFERENCE {name} is not used: it failed on the first batch (paddle2onnx could '
                        f'not convert the network at opset 13: boom)' for name in ('openvino', 'onnxruntime')]


def test_auto_without_the_optional_packages_uses_what_is_there(monkeypatch, model_and_batch):
    model, x, _ = model_and_batch
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name in ('openvino', 'onnxruntime') else real(name, *a))
    runner, _, _ = _run(model, x, 'auto', [])
    assert set(runner.report) - {'timing_ms', 'timing_images'} == {'paddle'}
    with pytest.raises(RuntimeUnavailableError, match='openvino'):
        create_runner(model, 64, 'openvino')


def test_on_a_gpu_auto_is_dygraph_and_exports_nothing(monkeypatch, model_and_batch):
    model, x, expected = model_and_batch
    monkeypatch.setattr(paddle.device, 'get_device', lambda: 'gpu:0')
    runner = create_runner(model, 64, 'auto')
    assert runner.name == 'dygraph' and runner.exported is None
    assert isinstance(runner(x), paddle.Tensor)   # the logits stay on the device


def test_dygraph_is_served_unchecked(model_and_batch):
    model, x, expected = model_and_batch
    runner = create_runner(model, 64, 'dygraph')
    assert runner.name == 'dygraph' and runner.exported is None
    assert relative_difference(runner(x), expected)['max_rel'] <= 1e-5


def test_an_unknown_kind_names_the_choices(model_and_batch):
    with pytest.raises(ValueError, match='auto, dygraph, openvino, onnxruntime, paddle'):
        create_runner(model_and_batch[0], 64, 'tensorrt')


@pytest.mark.parametrize('cores,workers,processes,expected', [
    (2, 2, 1, 1), (8, 4, 1, 4), (8, 0, 1, 8), (8, 2, 2, 2), (2, 4, 1, 1), (1, 0, 4, 1)])
def test_threads_beside_loader_leaves_the_loader_its_cores(monkeypatch, cores, workers, processes, expected):
    monkeypatch.setattr(os, 'cpu_count', lambda: cores)
    assert threads_beside_loader(workers, processes) == expected
