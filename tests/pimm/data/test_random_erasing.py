"""RandomErasing parity with timm.data.random_erasing: boxes, sampling statistics, fill modes, counts."""
import math
import random

import numpy as np
import pytest
import torch
from timm.data.random_erasing import RandomErasing as TimmRandomErasing

from pimm.data.random_erasing import RandomErasing


def _erased(arr):
    return arr == 0  # inputs are all ones, const mode writes zeros


@pytest.mark.parametrize('kwargs', [
    dict(probability=0.7), dict(probability=1.0, min_count=1, max_count=3),
    dict(probability=1.0, min_area=0.2, max_area=0.9, min_aspect=0.5, max_aspect=4.0),
])
def test_const_mode_boxes_equal_timm_seeded(kwargs):
    ours, theirs = RandomErasing(**kwargs), TimmRandomErasing(**kwargs, device='cpu')
    for seed in range(20):
        random.seed(seed)
        expected = theirs(torch.ones(3, 24, 30)).numpy()
        random.seed(seed)
        got = ours(np.ones((3, 24, 30), np.float32))
        np.testing.assert_array_equal(got, expected)


def test_batch_num_splits_equal_timm_seeded():
    ours, theirs = RandomErasing(1.0, num_splits=2), TimmRandomErasing(1.0, num_splits=2, device='cpu')
    random.seed(3)
    expected = theirs(torch.ones(6, 3, 16, 16)).numpy()
    random.seed(3)
    got = ours(np.ones((6, 3, 16, 16), np.float32))
    np.testing.assert_array_equal(got, expected)
    assert not _erased(got[:3]).any() and _erased(got[3:]).reshape(3, -1).any(axis=1).all()


def _timm_rule_stats(n, img_h, img_w, min_area, max_area, log_aspect, seed):
    """Reference: the sampling rule written out from timm's docs (one box, 10 attempts)."""
    rng = random.Random(seed)
    areas, aspects = [], []
    for _ in range(n):
        for _ in range(10):
            target = rng.uniform(min_area, max_area) * img_h * img_w
            aspect = math.exp(rng.uniform(*log_aspect))
            h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if h < img_h and w < img_w:
                areas.append(h * w / (img_h * img_w))
                aspects.append(h / w)
                break
    return np.array(areas), np.array(aspects)


def test_area_and_aspect_statistics_match_timm_rule():
    img_h, img_w, n = 40, 48, 3000
    re_ = RandomErasing(1.0, min_area=0.05, max_area=0.6, min_aspect=0.3)
    random.seed(1)
    boxes = [re_.sample_boxes(img_h, img_w) for _ in range(n)]
    assert all(len(b) <= 1 for b in boxes)
    hw = np.array([b[0][2:] for b in boxes if b])
    areas, aspects = hw.prod(1) / (img_h * img_w), hw[:, 0] / hw[:, 1]
    ref_areas, ref_aspects = _timm_rule_stats(n, img_h, img_w, 0.05, 0.6, re_.log_aspect_ratio, seed=2)
    assert abs(len(areas) - len(ref_areas)) < 0.03 * n
    for ours, ref, tol in ((areas, ref_areas, 0.015), (np.log(aspects), np.log(ref_aspects), 0.08)):
        assert abs(ours.mean() - ref.mean()) < tol and abs(ours.std() - ref.std()) < tol
        assert np.abs(np.quantile(ours, [0.1, 0.5, 0.9]) - np.quantile(ref, [0.1, 0.5, 0.9])).max() < 2 * tol
    assert areas.max() <= 0.6 * 1.15 and np.exp(np.abs(np.log(aspects))).max() <= (1 / 0.3) * 1.5
    # every box lies inside the image
    tops, lefts = np.array([b[0][0] for b in boxes if b]), np.array([b[0][1] for b in boxes if b])
    assert (tops >= 0).all() and (tops + hw[:, 0] <= img_h).all() and (lefts + hw[:, 1] <= img_w).all()


def test_gives_up_after_ten_attempts(monkeypatch):
    calls = []
    real_uniform = random.uniform
    monkeypatch.setattr(random, 'uniform', lambda a, b: calls.append((a, b)) or real_uniform(a, b))
    re_ = RandomErasing(1.0, min_area=1.0, max_area=1.0, min_aspect=1.0)  # box as big as the image never fits
    img = np.ones((3, 10, 10), np.float32)
    assert re_.sample_boxes(10, 10) == ()
    assert len(calls) == 20  # 10 attempts x (area, aspect)
    assert (re_(img) == 1).all()


def test_probability_zero_changes_nothing_and_one_always_erases():
    x = np.random.RandomState(0).randn(4, 3, 20, 20).astype(np.float32)
    assert (RandomErasing(0.0, mode='pixel')(x.copy()) == x).all()
    ones = RandomErasing(1.0)(np.ones((8, 3, 20, 20), np.float32))
    assert _erased(ones).reshape(8, -1).any(axis=1).all()


@pytest.mark.parametrize('mode', ['rand', 'pixel'])
def test_fill_value_distributions(mode):
    np.random.seed(0)
    random.seed(0)
    re_ = RandomErasing(1.0, min_area=0.2, max_area=0.4, mode=mode)
    per_box = []
    for _ in range(300):
        img = re_(np.full((3, 24, 24), np.nan, np.float32))
        erased = ~np.isnan(img)
        assert (erased == erased[:1]).all()  # same region in every channel
        vals = img[:, erased[0]]
        assert vals.dtype == np.float32
        if mode == 'rand':
            assert (vals == vals[:, :1]).all()  # one colour per channel
        else:
            assert len(np.unique(vals)) > vals.shape[1]  # per-pixel values
        per_box.append(vals[:, 0])
    first = np.concatenate(per_box)
    assert abs(first.mean()) < 0.12 and abs(first.std() - 1) < 0.1  # standard normal


def test_const_mode_writes_zeros_in_a_rectangle():
    random.seed(5)
    img = RandomErasing(1.0, mode='const')(np.ones((3, 30, 30), np.float32))
    rows, cols = np.nonzero(_erased(img[0]))
    assert _erased(img[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]).all()
    assert ((img == 0) | (img == 1)).all()


def test_count_range_and_area_split():
    random.seed(0)
    re_ = RandomErasing(1.0, min_area=0.1, max_area=0.1, min_aspect=1.0, min_count=2, max_count=4)
    counts = [len(re_.sample_boxes(100, 100)) for _ in range(300)]
    assert set(counts) == {2, 3, 4}
    fixed = RandomErasing(1.0, min_area=0.12, max_area=0.12, min_aspect=1.0, min_count=3)
    boxes = fixed.sample_boxes(100, 100)
    assert len(boxes) == 3 and all(h * w == 20 * 20 for _, _, h, w in boxes)  # 0.12 / 3 of the area each


@pytest.mark.parametrize('kwargs, fragment', [
    (dict(mode='noise'), 'mode'), (dict(probability=1.5), 'probability'), (dict(min_area=0.5, max_area=0.1), 'area'),
    (dict(min_count=3, max_count=2), 'count'), (dict(min_aspect=-1), 'aspect'),
])
def test_bad_arguments_raise(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        RandomErasing(**kwargs)


@pytest.mark.parametrize('bad', [np.ones((4, 4), np.float32), np.ones((3, 4, 4), np.uint8), [[1.0]]])
def test_bad_input_raises(bad):
    with pytest.raises(ValueError, match='RandomErasing expects'):
        RandomErasing(1.0)(bad)
