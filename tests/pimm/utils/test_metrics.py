"""accuracy against timm.utils.accuracy, AverageMeter, reduce_tensor and the summary CSV."""
import csv

import numpy as np
import paddle
import pytest
import torch
from timm.utils import accuracy as timm_accuracy
from timm.utils import update_summary as timm_update_summary

from pimm.utils.metrics import AverageMeter, accuracy, reduce_tensor
from pimm.utils.summary import update_summary


@pytest.mark.parametrize('num_classes,topk', [(10, (1, 5)), (3, (1, 5)), (1000, (1, 2, 5, 10))])
def test_accuracy_matches_timm(num_classes, topk):
    rng = np.random.default_rng(num_classes)
    logits = rng.standard_normal((64, num_classes)).astype(np.float32)
    target = rng.integers(0, num_classes, 64)
    theirs = [t.item() for t in timm_accuracy(torch.from_numpy(logits), torch.from_numpy(target), topk=topk)]
    ours = accuracy(paddle.to_tensor(logits), paddle.to_tensor(target), topk=topk)
    assert all(isinstance(a, paddle.Tensor) for a in ours)
    np.testing.assert_allclose([a.item() for a in ours], theirs, rtol=0, atol=1e-4)
    column = accuracy(paddle.to_tensor(logits), paddle.to_tensor(target).reshape([-1, 1]), topk=topk)
    assert [a.item() for a in column] == [a.item() for a in ours]


def test_average_meter():
    meter = AverageMeter()
    meter.update(2.0, n=3)
    meter.update(4.0)
    assert (meter.val, meter.sum, meter.count, meter.avg) == (4.0, 10.0, 4, 2.5)
    meter.reset()
    assert meter.avg == 0 and meter.count == 0


def test_reduce_tensor_without_distribution_is_a_copy():
    x = paddle.to_tensor([1.0, 3.0])
    y = reduce_tensor(x, 1)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    y[0] = 5.
    assert x.numpy()[0] == 1.0


def test_update_summary_matches_timm(tmp_path):
    ours, theirs = str(tmp_path / 'ours.csv'), str(tmp_path / 'theirs.csv')
    rows = [(0, {'loss': 2.5}, {'loss': 2.1, 'prec1': 30.25, 'prec5': 60.5}),
            (1, {'loss': 1.75}, {'loss': 1.5, 'prec1': 45.0, 'prec5': 75.125})]
    for i, (epoch, train, evals) in enumerate(rows):
        update_summary(epoch, train, evals, ours, write_header=i == 0)
        timm_update_summary(epoch, train, evals, theirs, write_header=i == 0)
    with open(ours, 'rb') as a, open(theirs, 'rb') as b:
        assert a.read() == b.read()
    with open(ours, newline='') as f:
        table = list(csv.reader(f))
    assert table[0] == ['epoch', 'train_loss', 'eval_loss', 'eval_prec1', 'eval_prec5']
    assert table[2] == ['1', '1.75', '1.5', '45.0', '75.125']


def test_update_summary_accepts_tensors_and_lr(tmp_path):
    path = str(tmp_path / 'sub' / 'summary.csv')
    update_summary(3, {'loss': paddle.to_tensor(0.5)}, {}, path, write_header=True, lr=0.01)
    with open(path, newline='') as f:
        assert list(csv.reader(f)) == [['epoch', 'train_loss', 'lr'], ['3', '0.5', '0.01']]
