"""The exported Paddle Inference predictor gives the dygraph network's logits."""
import os

import numpy as np
import paddle
import pytest

import Paddle_Cream  # noqa: F401
import pimm
from Paddle_Cream.engine.inference import DygraphRunner, PredictorRunner, threads_beside_loader


def test_predictor_matches_dygraph():
    paddle.seed(0)
    model = pimm.create_model('cream_14', num_classes=10)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):  # non-trivial statistics
            layer._mean.set_value(paddle.randn(layer._mean.shape) * 0.1)
            layer._variance.set_value(paddle.rand(layer._variance.shape) + 0.5)
    x = np.random.RandomState(0).randn(5, 3, 64, 64).astype('float32')
    on_device = DygraphRunner(model)(paddle.to_tensor(x))
    assert isinstance(on_device, paddle.Tensor)  # evaluation keeps the logits where the model is
    expected = on_device.numpy()
    got = PredictorRunner(model, 64, threads=1)(paddle.to_tensor(x))  # a loader's tensor, as test mode gives it
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    assert (got.argmax(1) == expected.argmax(1)).all()
    # a different batch size goes through the same predictor
    np.testing.assert_allclose(PredictorRunner(model, 64)(x[:2]), expected[:2], rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize('cores,workers,processes,expected', [
    (2, 2, 1, 1), (8, 4, 1, 4), (8, 0, 1, 8), (8, 2, 2, 2), (2, 4, 1, 1), (1, 0, 4, 1)])
def test_threads_beside_loader_leaves_the_loader_its_cores(monkeypatch, cores, workers, processes, expected):
    monkeypatch.setattr(os, 'cpu_count', lambda: cores)
    assert threads_beside_loader(workers, processes) == expected
