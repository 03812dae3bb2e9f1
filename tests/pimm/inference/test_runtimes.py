"""Every runtime of pimm.inference gives the dygraph network's logits (the export tolerance, 1e-4
relative to the largest logit), at two batch sizes through one runtime, from a loader's tensor too.

The published networks are checked against timm (PyTorch) through ``export`` in
tests/cream/engine/test_export.py; here each runtime class is checked on its own."""
import numpy as np
import paddle
import pytest

import Paddle_Cream  # noqa: F401
import pimm
from pimm.inference import (CPU_RUNTIMES, ExportedModel, PARITY_RTOL, RuntimeUnavailableError, create_runtime,
                            missing_packages, relative_difference, require_runtime)

INSTALLED = [name for name in CPU_RUNTIMES if not missing_packages(name)]


def _model(name='cream_14', classes=10, seed=0):
    paddle.seed(seed)
    model = pimm.create_model(name, num_classes=classes)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):   # non-trivial statistics
            layer._mean.set_value(paddle.randn(layer._mean.shape) * 0.1)
            layer._variance.set_value(paddle.rand(layer._variance.shape) + 0.5)
    return model.eval()


@pytest.fixture(scope='module')
def exported():
    model = _model()
    x = np.random.RandomState(0).randn(5, 3, 64, 64).astype('float32')
    with paddle.no_grad():
        expected = model(paddle.to_tensor(x)).numpy()
    export = ExportedModel(model, 64)
    yield export, x, expected
    export.close()


def test_the_ci_environment_has_every_runtime():
    # the dev requirements install them: a runtime silently missing would leave its tests unrun
    assert INSTALLED == list(CPU_RUNTIMES), f'missing: {[n for n in CPU_RUNTIMES if n not in INSTALLED]}'


@pytest.mark.parametrize('name', list(CPU_RUNTIMES))
def test_runtime_equals_dygraph(exported, name):
    export, x, expected = exported
    runtime = create_runtime(name, export, threads=1)
    got = runtime(paddle.to_tensor(x))   # a loader's tensor, as test mode gives it
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert relative_difference(got, expected)['max_rel'] <= PARITY_RTOL
    assert (got.argmax(1) == expected.argmax(1)).all()
    # another batch size through the same runtime (the exported batch is dynamic), then the first again
    assert relative_difference(runtime(x[:2]), expected[:2])['max_rel'] <= PARITY_RTOL
    assert relative_difference(runtime(x), expected)['max_rel'] <= PARITY_RTOL
    assert runtime.version


def test_a_wrong_network_is_caught_by_the_comparison(exported):
    # the comparison the tests and the runner rely on does see a real difference
    export, x, expected = exported
    other = _model(seed=1)
    with paddle.no_grad():
        assert relative_difference(other(paddle.to_tensor(x)), expected)['max_rel'] > 1e-2


def test_a_missing_package_is_one_line_naming_it(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'openvino' else real(name, *a))
    with pytest.raises(RuntimeUnavailableError, match=r"^INFERENCE openvino needs the package\(s\) openvino: "
                                                      r"pip install openvino"):
        require_runtime('openvino')
    require_runtime('onnxruntime')   # the others are still there


def test_the_export_has_single_activation_ops_and_dygraph_keeps_its_own(exported):
    # the fused ops are what make Paddle Inference fold the activations into the convolutions
    import collections
    import re
    export, _, _ = exported
    graph, _ = export.paddle_files
    with open(graph) as f:
        ops = collections.Counter(re.findall(r'"(?:pd_op|1)\.([a-z_0-9]+)"', f.read()))   # PIR json names ops '1.<op>'
    assert ops['swish'] > 0 and ops['hardsigmoid'] > 0 and ops['sigmoid'] == ops['relu6'] == 0, ops
    assert not any(getattr(m, 'fused', False) for m in export.model.sublayers())
