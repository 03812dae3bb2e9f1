"""Mixup / CutMix parity with timm.data.mixup on the same tensors, targets, and bad input."""
import numpy as np
import paddle
import pytest
import torch
from timm.data import mixup as T

from pimm.data import mixup as P

N, C, H, W, K = 6, 3, 12, 14, 10


@pytest.fixture(scope='module')
def batch():
    rng = np.random.RandomState(0)
    return rng.randn(N, C, H, W).astype(np.float32), rng.randint(0, K, N).astype(np.int64)


def _timm(x, y, **kw):
    out, tgt = T.Mixup(**kw)(torch.from_numpy(x.copy()), torch.from_numpy(y))
    return out.numpy(), tgt.numpy()


def _ours(mixer, x, y, lam=None, box=None):
    xt, yt = paddle.to_tensor(x), paddle.to_tensor(y)
    out, tgt = mixer(xt, yt) if lam is None else mixer.mix_with(xt, yt, lam, box)
    np.testing.assert_array_equal(xt.numpy(), x)  # the input is left alone
    assert tgt.dtype == paddle.float32 and tuple(tgt.shape) == (N, K)
    return out.numpy(), tgt.numpy()


def _close(a, b):
    np.testing.assert_allclose(a[0], b[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(a[1], b[1], atol=1e-6, rtol=0)


CONFIGS = [dict(), dict(cutmix_alpha=1.0), dict(mixup_alpha=0.0, cutmix_alpha=0.8), dict(cutmix_minmax=(0.2, 0.8)),
           dict(cutmix_alpha=1.0, correct_lam=False), dict(prob=0.5, cutmix_alpha=1.0, switch_prob=0.3)]


@pytest.mark.parametrize('mode', ['batch', 'pair', 'elem'])
@pytest.mark.parametrize('cfg', CONFIGS, ids=str)
def test_seeded_draws_equal_timm(batch, mode, cfg):
    x, y = batch
    kw = dict(cfg, mode=mode, num_classes=K)
    mixer = P.Mixup(**kw)
    for seed in range(4):
        np.random.seed(seed)
        expected = _timm(x, y, **kw)
        np.random.seed(seed)
        _close(_ours(mixer, x, y), expected)


def test_explicit_batch_mixup_equals_timm(batch, monkeypatch):
    x, y = batch
    monkeypatch.setattr(T.Mixup, '_params_per_batch', lambda self: (0.3, False))
    _close(_ours(P.Mixup(num_classes=K), x, y, lam=0.3), _timm(x, y, num_classes=K))


def test_explicit_batch_cutmix_equals_timm(batch, monkeypatch):
    x, y = batch
    box, lam = (2, 9, 3, 11), 1 - 7 * 8 / (H * W)
    monkeypatch.setattr(T.Mixup, '_params_per_batch', lambda self: (0.5, True))
    monkeypatch.setattr(T, 'cutmix_bbox_and_lam', lambda *a, **k: (box, lam))
    ours = _ours(P.Mixup(cutmix_alpha=1.0, num_classes=K), x, y, lam=lam, box=box)
    _close(ours, _timm(x, y, cutmix_alpha=1.0, num_classes=K))
    np.testing.assert_array_equal(ours[0][:, :, 2:9, 3:11], x[::-1, :, 2:9, 3:11])


@pytest.mark.parametrize('mode', ['elem', 'pair'])
def test_explicit_per_sample_params_equal_timm(batch, monkeypatch, mode):
    x, y = batch
    n = N if mode == 'elem' else N // 2
    lam = np.array([0.25, 1.0, 0.6, 0.8, 1.0, 0.45], np.float32)[:n]
    use_cut = np.array([False, True, True, False, False, True])[:n]
    boxes = iter([((1, 5, 2, 9), 0.8), ((0, 12, 0, 3), 0.75)])
    monkeypatch.setattr(T.Mixup, '_params_per_elem', lambda self, k: (lam.copy(), use_cut.copy()))
    monkeypatch.setattr(T, 'cutmix_bbox_and_lam', lambda *a, **k: next(boxes))
    expected = _timm(x, y, cutmix_alpha=1.0, mode=mode, num_classes=K)
    # what sample() would give: corrected lambdas, a box per CutMix sample, pair mirrored
    ours_lam, ours_box = lam.copy(), [None] * n
    for i, (box, new_lam) in zip(np.flatnonzero(use_cut & (lam != 1)), [((1, 5, 2, 9), 0.8), ((0, 12, 0, 3), 0.75)]):
        ours_box[i], ours_lam[i] = box, new_lam
    if mode == 'pair':
        ours_lam, ours_box = np.concatenate([ours_lam, ours_lam[::-1]]), ours_box + ours_box[::-1]
    mixer = P.Mixup(cutmix_alpha=1.0, mode=mode, num_classes=K)
    _close(_ours(mixer, x, y, lam=ours_lam, box=ours_box), expected)


@pytest.mark.parametrize('count', [None, 5])
def test_box_helpers_equal_timm(count):
    shape = (N, C, 37, 51)
    for seed in range(5):
        for ours, theirs, arg in ((P.rand_bbox, T.rand_bbox, 0.4), (P.rand_bbox_minmax, T.rand_bbox_minmax, (.2, .8))):
            np.random.seed(seed)
            expected = theirs(shape, arg, count=count)
            np.random.seed(seed)
            np.testing.assert_array_equal(ours(shape, arg, count=count), expected)
        np.random.seed(seed)
        e_box, e_lam = T.cutmix_bbox_and_lam(shape, 0.4, count=count)
        np.random.seed(seed)
        o_box, o_lam = P.cutmix_bbox_and_lam(shape, 0.4, count=count)
        np.testing.assert_array_equal(o_box, e_box)
        np.testing.assert_allclose(o_lam, e_lam)
    np.random.seed(0)
    expected = T.rand_bbox(shape, 0.4, margin=0.5)
    np.random.seed(0)
    assert P.rand_bbox(shape, 0.4, margin=0.5) == expected


@pytest.mark.parametrize('smoothing', [0.0, 0.1, 0.3])
def test_prob_zero_keeps_input_and_gives_smoothed_one_hot(batch, smoothing):
    x, y = batch
    for mode in ('batch', 'elem', 'pair'):
        mixer = P.Mixup(cutmix_alpha=1.0, prob=0.0, mode=mode, label_smoothing=smoothing, num_classes=K)
        out, tgt = _ours(mixer, x, y)
        np.testing.assert_array_equal(out, x)
        expected = np.full((N, K), smoothing / K, np.float32)
        expected[np.arange(N), y] = 1 - smoothing + smoothing / K
        np.testing.assert_allclose(tgt, expected, atol=1e-7)


def test_soft_targets_sum_to_one_and_mix_two_labels(batch):
    x, y = batch
    np.random.seed(0)
    for mode in ('batch', 'elem', 'pair'):
        _, tgt = _ours(P.Mixup(cutmix_alpha=1.0, mode=mode, label_smoothing=0.1, num_classes=K), x, y)
        np.testing.assert_allclose(tgt.sum(1), 1.0, atol=1e-6)
        assert (tgt >= 0.1 / K - 1e-7).all()
        # mass above the smoothing floor sits on the sample's own label and its mirror's label
        above = tgt - 0.1 / K
        own, mirror = above[np.arange(N), y], above[np.arange(N), y[::-1]]
        np.testing.assert_allclose(np.where(y == y[::-1], own, own + mirror), 0.9, atol=1e-6)


def test_mixup_target_values():
    y = paddle.to_tensor(np.array([1, 3], np.int64))
    tgt = P.mixup_target(y, 4, lam=0.7, smoothing=0.2).numpy()
    hot = np.full((2, 4), 0.05, np.float32)
    hot[[0, 1], [1, 3]] = 0.85
    np.testing.assert_allclose(tgt, 0.7 * hot + 0.3 * hot[::-1], atol=1e-7)
    ref = T.mixup_target(torch.tensor([1, 3]), 4, lam=0.7, smoothing=0.2).numpy()
    np.testing.assert_allclose(tgt, ref, atol=1e-7)


def test_mixup_disabled_flag(batch):
    x, y = batch
    mixer = P.Mixup(num_classes=K)
    mixer.mixup_enabled = False
    out, _ = _ours(mixer, x, y)
    np.testing.assert_array_equal(out, x)


def test_odd_batch_and_bad_input_raise(batch):
    x, y = batch
    mixer = P.Mixup(num_classes=K)
    with pytest.raises(ValueError, match='even batch size'):
        mixer(paddle.to_tensor(x[:5]), paddle.to_tensor(y[:5]))
    with pytest.raises(ValueError, match='NCHW'):
        mixer(paddle.to_tensor(x[0]), paddle.to_tensor(y))
    with pytest.raises(ValueError, match='target shape'):
        mixer(paddle.to_tensor(x), paddle.to_tensor(y[:4]))
    with pytest.raises(ValueError, match='class indices'):
        mixer(paddle.to_tensor(x), paddle.to_tensor(y + K))


@pytest.mark.parametrize('kwargs, fragment', [
    (dict(mode='half'), 'mode'), (dict(mixup_alpha=0.0), 'mixup_alpha > 0'), (dict(cutmix_minmax=(0.9, 0.1)), 'minmax'),
    (dict(prob=2.0), 'prob'), (dict(label_smoothing=-0.1), 'label_smoothing'), (dict(num_classes=0), 'num_classes'),
])
def test_bad_arguments_raise(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        P.Mixup(**kwargs)
