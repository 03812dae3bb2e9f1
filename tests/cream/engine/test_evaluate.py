"""Metric arithmetic and the parity verdict."""
import numpy as np
import pytest

from Paddle_Cream.engine.evaluate import batch_metrics
from Paddle_Cream.engine.run_test import parity_line


def test_batch_metrics_counts_and_loss():
    logits = np.array([[5., 1, 0, 0, 0, 0], [0, 5, 4, 3, 2, 1], [0, 1, 2, 3, 4, 5]])
    targets = np.array([0, 2, 0])
    n, top1, top5, loss, skipped, nonfinite = batch_metrics(logits, targets)
    assert (n, top1, top5, skipped, nonfinite) == (3, 1, 2, 0, 0)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert loss == pytest.approx(-(logp[0, 0] + logp[1, 2] + logp[2, 0]))


def test_batch_metrics_leaves_out_skipped_images():
    logits = np.eye(3)
    n, top1, _, _, skipped, _ = batch_metrics(logits, np.array([0, -1, 2]))
    assert (n, top1, skipped) == (2, 2, 1)


@pytest.mark.parametrize('top1, verdict', [(53.79, 'PARITY'), (54.1, 'PARITY'), (53.49, 'MISMATCH')])
def test_parity_line(top1, verdict):
    line = parity_line('Cream-14', top1, {'top1': 53.8, 'top5': 77.2})
    assert line.startswith(f'Cream-14 top-1 {top1:.2f} (paper 53.8, diff ')
    assert line.endswith(verdict)


def _three_batches(as_tensor):
    """Batches of 2 images: both right, both wrong, one right (running top-1 100, 50, 50)."""
    import paddle
    right, wrong = np.array([[4., 0.], [0., 4.]]), np.array([[0., 4.], [4., 0.]])
    half = np.array([[4., 0.], [4., 0.]])
    targets = np.array([0, 1])
    batches = [(logits, targets) for logits in (right, wrong, half)]

    def run(logits):
        return paddle.to_tensor(logits) if as_tensor else logits
    return run, batches


@pytest.mark.parametrize('as_tensor', [False, True], ids=['host', 'device'])
@pytest.mark.parametrize('every', [20, 1], ids=['throttled', 'every-batch'])
def test_the_validate_bar_shows_the_running_top1_and_ends_on_the_result(monkeypatch, as_tensor, every):
    """The bar's postfix is top-1 and loss over the images so far, and its last display is the figures
    returned (it used to keep the first batch's top-1 until the 20th batch)."""
    import progress
    import Paddle_Cream.engine.evaluate as evaluate_module
    monkeypatch.setattr(evaluate_module, '_SHOW_EVERY', every)
    bars = progress.spy_on_bars(monkeypatch, evaluate_module)
    run, batches = _three_batches(as_tensor)
    metrics = evaluate_module.evaluate(run, batches, len(batches), show_progress=True, desc='validate')
    assert metrics['top1'] == 50.0
    (bar,) = bars
    assert bar['closed_with'] == {'top1': '50.00', 'loss': f"{metrics['loss']:.4f}"}
    shown = [float(p['top1']) for p in bar['postfixes']]
    assert shown[0] == 100.0
    if every == 1:   # every batch: the cumulative top-1 after each, then the final one
        assert shown == [100.0, 50.0, 50.0, 50.0]
