"""pimm.loss cross-entropies against timm's: forward values and gradients w.r.t. the logits."""
import numpy as np
import paddle
import pytest
import torch
from timm.loss import LabelSmoothingCrossEntropy as TimmLabelSmoothing
from timm.loss import SoftTargetCrossEntropy as TimmSoftTarget

from pimm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy


def _loss_and_grad_paddle(loss_fn, logits, target):
    x = paddle.to_tensor(logits, stop_gradient=False)
    loss = loss_fn(x, paddle.to_tensor(target))
    loss.backward()
    return float(loss.numpy()), x.grad.numpy()


def _loss_and_grad_torch(loss_fn, logits, target):
    x = torch.tensor(logits, requires_grad=True)
    loss = loss_fn(x, torch.tensor(target))
    loss.backward()
    return float(loss.detach()), x.grad.numpy()


@pytest.mark.parametrize('smoothing', [0.0, 0.1, 0.35])
def test_label_smoothing_matches_timm(smoothing):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((8, 11)) * 3).astype(np.float32)
    target = rng.integers(0, 11, 8).astype(np.int64)
    ours = _loss_and_grad_paddle(LabelSmoothingCrossEntropy(smoothing), logits, target)
    ref = _loss_and_grad_torch(TimmLabelSmoothing(smoothing), logits, target)
    assert abs(ours[0] - ref[0]) < 1e-6
    np.testing.assert_allclose(ours[1], ref[1], rtol=0, atol=1e-6)


def test_soft_target_matches_timm():
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((6, 9)) * 2).astype(np.float32)
    target = rng.random((6, 9)).astype(np.float32)
    target /= target.sum(axis=1, keepdims=True)
    ours = _loss_and_grad_paddle(SoftTargetCrossEntropy(), logits, target)
    ref = _loss_and_grad_torch(TimmSoftTarget(), logits, target)
    assert abs(ours[0] - ref[0]) < 1e-6
    np.testing.assert_allclose(ours[1], ref[1], rtol=0, atol=1e-6)


def test_bad_arguments_raise():
    for smoothing in (1.0, -0.1, 'a'):
        with pytest.raises(ValueError):
            LabelSmoothingCrossEntropy(smoothing)
    with pytest.raises(ValueError, match='same shape'):
        SoftTargetCrossEntropy()(paddle.zeros([2, 3]), paddle.zeros([2, 4]))
    with pytest.raises(ValueError, match='class indices'):
        LabelSmoothingCrossEntropy()(paddle.zeros([2, 3]), paddle.zeros([3], dtype='int64'))
