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
