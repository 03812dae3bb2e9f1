"""pimm.data transforms: eval parity with timm on real files, training ops, bad input."""
import math
import random

import numpy as np
import pytest
import timm.data
import torch
from PIL import Image
from timm.data.transforms import RandomResizedCropAndInterpolation as TimmRRC
from torchvision.transforms import RandomResizedCrop as TorchRRC
from torchvision.transforms import functional as tvF

from pimm.data import create_transform, load_rgb
from pimm.data.transforms import (CenterCropArray, ColorJitter, RandomHorizontalFlip,
                                  RandomResizedCropAndInterpolation, ToNormalizedCHW, _shift_hue)


def _smooth_rgb(width, height, seed):
    """A smooth random RGB image (JPEG-friendly: little high-frequency content)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 12), max(2, width // 12), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


# (file name, PIL mode written, width, height): modes and sizes chosen to exercise conversion and rounding
EVAL_FILES = [
    ('rgb_landscape.jpg', 'RGB', 500, 375),
    ('gray_portrait.jpg', 'L', 131, 197),
    ('cmyk.jpg', 'CMYK', 203, 150),
    ('alpha.png', 'RGBA', 257, 255),
    ('palette.png', 'P', 99, 301),
    ('square.bmp', 'RGB', 64, 64),
]


@pytest.fixture(scope='module')
def eval_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('eval_images')
    paths = []
    for i, (name, mode, width, height) in enumerate(EVAL_FILES):
        img = _smooth_rgb(width, height, seed=i)
        if mode == 'RGBA':
            img = img.convert('RGBA')
            img.putalpha(Image.fromarray(np.linspace(0, 255, width * height).reshape(height, width).astype(np.uint8)))
        elif mode == 'P':
            img = img.convert('P', palette=Image.Palette.ADAPTIVE, colors=64)
        else:
            img = img.convert(mode)
        img.save(folder / name, quality=90) if name.endswith('.jpg') else img.save(folder / name)
        paths.append(str(folder / name))
    return paths


def _timm_open(path):
    with open(path, 'rb') as f:
        return Image.open(f).convert('RGB')


def test_load_rgb_matches_pil_convert(eval_files):
    for path in eval_files:
        ours = load_rgb(path)
        assert ours.mode == 'RGB'
        assert np.array_equal(np.asarray(ours), np.asarray(_timm_open(path))), path


@pytest.mark.parametrize('interpolation', ['bicubic', 'bilinear'])
@pytest.mark.parametrize('crop_pct', [0.875, 1.0])
def test_eval_transform_equals_timm(eval_files, interpolation, crop_pct):
    images = [load_rgb(p) for p in eval_files]
    for size in (64, 96, 160, 224):
        ours = create_transform(size, interpolation=interpolation, crop_pct=crop_pct)
        theirs = timm.data.create_transform(size, is_training=False, interpolation=interpolation, crop_pct=crop_pct)
        for path, img in zip(eval_files, images):
            out = ours(img)
            ref = theirs(_timm_open(path)).numpy()
            assert out.dtype == np.float32 and out.shape == (3, size, size) == ref.shape
            np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5, err_msg=f'{path} size={size}')


@pytest.mark.parametrize('input_size,crop_pct', [((3, 96, 128), 0.9), ((3, 120, 80), 0.875), (72, 1.15),
                                                 ((3, 100, 101), 2.0), (33, 0.7), (224, 0.56)])
def test_eval_transform_equals_timm_unusual_sizes(eval_files, input_size, crop_pct):
    # non-square targets (timm's ResizeKeepRatio rule), crop_pct > 1 (zero padding), odd rounding
    ours = create_transform(input_size, crop_pct=crop_pct, interpolation='bicubic')
    theirs = timm.data.create_transform(input_size, crop_pct=crop_pct, interpolation='bicubic')
    for path in eval_files:
        np.testing.assert_allclose(ours(load_rgb(path)), theirs(_timm_open(path)).numpy(), rtol=0, atol=1e-5)


def test_eval_resize_uses_timms_float_floor():
    # 224 / 0.56 is 399.99999999999994 in floating point: timm resizes to 399, so must we
    assert create_transform(224, crop_pct=0.56).steps[0].size == 399
    # the long side is truncated like torchvision: 73 * 500 / 375 = 97.33 -> 97
    assert create_transform(64).steps[0].output_size(500, 375) == (97, 73)


def test_eval_transform_repr_and_shape():
    tf = create_transform((3, 64, 64), crop_pct=0.875, interpolation='bicubic')
    text = repr(tf)
    for step in ('ResizeShorterSide(size=73, interpolation=bicubic)', 'CenterCropArray(size=(64, 64))',
                 'ToNormalizedCHW'):
        assert step in text
    assert tf.output_shape == (3, 64, 64) and tf.draft_size is None


def test_fast_decode_is_an_opt_in_approximation(eval_files):
    exact = create_transform(64, crop_pct=0.875)
    fast = create_transform(64, crop_pct=0.875, fast_decode=True)
    assert fast.draft_size == (73, 73) and 'approximate' in repr(fast)
    path = eval_files[0]  # 500x375 JPEG: drafted by 4 to 125x94, still >= 73
    drafted = load_rgb(path, draft_size=fast.draft_size)
    assert drafted.size == (125, 94)
    out = fast(drafted)
    assert out.shape == (3, 64, 64)
    assert np.abs(out - exact(load_rgb(path))).mean() < 0.1  # close, not equal
    assert load_rgb(eval_files[3], draft_size=(8, 8)).size == (257, 255)  # PNG: draft ignored


def test_train_transform_shapes_and_determinism(eval_files):
    tf = create_transform((3, 48, 40), is_training=True, interpolation='random', color_jitter=(0.4, 0.4, 0.4, 0.1))
    img = load_rgb(eval_files[0])
    outs = []
    for _ in range(2):
        random.seed(7)
        np.random.seed(7)
        outs.append([tf(img) for _ in range(4)])
    for a, b in zip(*outs):
        assert a.dtype == np.float32 and a.shape == (3, 48, 40)
        assert np.array_equal(a, b)
    assert not np.array_equal(outs[0][0], outs[0][1])
    assert [type(s).__name__ for s in tf.steps] == ['RandomResizedCropAndInterpolation', 'RandomHorizontalFlip',
                                                    'ColorJitter', 'ToNormalizedCHW']


def test_random_resized_crop_matches_timm_exactly(eval_files):
    img = load_rgb(eval_files[1])
    for interpolation in ('random', 'bicubic'):
        ours = RandomResizedCropAndInterpolation(56, interpolation=interpolation)
        theirs = TimmRRC(56, interpolation=interpolation)
        for seed in range(20):
            random.seed(seed)
            a = np.asarray(ours(img))
            random.seed(seed)
            b = np.asarray(theirs(img))
            assert np.array_equal(a, b), seed
    # the central fallback when no attempt fits: a very wide image with a narrow ratio range
    ours = RandomResizedCropAndInterpolation(8, scale=(0.9, 1.0), ratio=(0.5, 0.6))
    for seed in range(5):
        random.seed(seed)
        a = ours.get_params(200, 20)
        random.seed(seed)
        assert a == TimmRRC.get_params(Image.new('RGB', (200, 20)), (0.9, 1.0), (0.5, 0.6)) == (0, 94, 20, 12)


def test_crop_sampling_statistics_match_torchvision():
    width, height, n = 400, 300, 3000
    ours = RandomResizedCropAndInterpolation(32)
    random.seed(0)
    crops = np.array([ours.get_params(width, height) for _ in range(n)], dtype=np.float64)
    torch.manual_seed(0)
    ref_img = torch.empty(3, height, width)
    ref = np.array([TorchRRC.get_params(ref_img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)], dtype=np.float64)
    for params in (crops, ref):
        top, left, h, w = params.T
        assert (top >= 0).all() and (left >= 0).all() and (top + h <= height).all() and (left + w <= width).all()
    area = [p[:, 2] * p[:, 3] / (width * height) for p in (crops, ref)]
    log_aspect = [np.log(p[:, 3] / p[:, 2]) for p in (crops, ref)]
    for ours_v, ref_v, tol in ((area[0], area[1], 0.02), (log_aspect[0], log_aspect[1], 0.02)):
        assert abs(ours_v.mean() - ref_v.mean()) < tol
        np.testing.assert_allclose(np.quantile(ours_v, [0.1, 0.5, 0.9]), np.quantile(ref_v, [0.1, 0.5, 0.9]),
                                   atol=0.04)
    assert area[0].min() > 0.07 and area[0].max() <= 1.0
    assert log_aspect[0].min() > math.log(3 / 4) - 0.05 and log_aspect[0].max() < math.log(4 / 3) + 0.05


def test_horizontal_flip_mirrors(eval_files):
    img = load_rgb(eval_files[0])
    assert np.array_equal(np.asarray(RandomHorizontalFlip(1.0)(img)), np.asarray(img)[:, ::-1])
    assert RandomHorizontalFlip(0.0)(img) is img
    random.seed(0)
    flips = sum(RandomHorizontalFlip(0.5)(img) is not img for _ in range(400))
    assert 150 < flips < 250
    # in the full pipeline: a whole-image crop, flipped or not, gives mirrored tensors
    kwargs = dict(is_training=True, scale=(1.0, 1.0), ratio=(500 / 375, 500 / 375), color_jitter=0)
    flipped = create_transform(60, hflip=1.0, **kwargs)(img)
    plain = create_transform(60, hflip=0.0, **kwargs)(img)
    assert np.array_equal(flipped, plain[:, :, ::-1])


def test_color_jitter_ranges_and_hue():
    gray = Image.new('RGB', (8, 8), (100, 100, 100))
    jitter = ColorJitter(brightness=0.4)
    random.seed(1)
    values = [np.asarray(jitter(gray))[0, 0, 0] for _ in range(300)]
    assert 60 <= min(values) < 70 and 130 < max(values) <= 140
    colourful = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    for factor in (-0.5, -0.3, 0.0, 0.2, 0.5):
        assert np.array_equal(np.asarray(_shift_hue(colourful, factor)),
                              np.asarray(tvF.adjust_hue(colourful, factor))), factor
    both = ColorJitter(brightness=0.5, saturation=0.5)
    orders = set()
    for seed in range(30):
        random.seed(seed)
        order = list(range(2))
        random.shuffle(order)
        orders.add(tuple(order))
        random.seed(seed)
        both(colourful)
    assert len(orders) == 2


def test_center_crop_and_normalize_follow_torchvision():
    arr = np.arange(7 * 9 * 3, dtype=np.uint8).reshape(7, 9, 3)
    crop = CenterCropArray((4, 4))(arr)
    ref = tvF.center_crop(Image.fromarray(arr), [4, 4])
    assert np.array_equal(crop, np.asarray(ref))
    padded = CenterCropArray((10, 12))(arr)
    assert np.array_equal(padded, np.asarray(tvF.center_crop(Image.fromarray(arr), [10, 12])))
    norm = ToNormalizedCHW((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))(arr)
    ref = tvF.normalize(tvF.to_tensor(arr), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)).numpy()
    np.testing.assert_allclose(norm, ref, rtol=0, atol=1e-6)


def test_auto_augment_and_random_erasing_are_wired(eval_files):
    pytest.importorskip('pimm.data.auto_augment')
    pytest.importorskip('pimm.data.random_erasing')
    tf = create_transform(48, is_training=True, auto_augment='rand-m9-mstd0.5', re_prob=1.0, re_count=2)
    names = [type(s).__name__ for s in tf.steps]
    assert names[:2] == ['RandomResizedCropAndInterpolation', 'RandomHorizontalFlip']
    assert 'ColorJitter' not in names and names[-2:] == ['ToNormalizedCHW', 'RandomErasing']
    assert tf.steps[-1].max_count == 2
    random.seed(0)
    np.random.seed(0)
    out = tf(load_rgb(eval_files[0]))
    assert out.shape == (3, 48, 48) and out.dtype == np.float32
    assert (out == 0).all(axis=0).any()  # 'const' erasing zeroes whole pixels


@pytest.mark.parametrize('kwargs', [
    dict(input_size=(3, 0, 5)), dict(input_size='big'), dict(input_size=(1, 32, 32)), dict(input_size=(3, 32.0, 32)),
    dict(crop_pct=0), dict(crop_pct=-0.5), dict(interpolation='cubic'), dict(interpolation='random'),
    dict(mean=(0.5, 0.5)), dict(std=(0.2, 0.0, 0.2)),
    dict(is_training=True, scale=(0.5, 0.1)), dict(is_training=True, ratio=(0, 1)),
    dict(is_training=True, hflip=1.5), dict(is_training=True, color_jitter=-0.1),
    dict(is_training=True, color_jitter=(0.1, 0.1)), dict(is_training=True, auto_augment='augmix-m5'),
    dict(is_training=True, re_prob=0.5, re_count=0), dict(is_training=True, re_prob=2.0),
    dict(is_training=True, fast_decode=True),
])
def test_bad_arguments_raise_one_line(kwargs):
    kwargs.setdefault('input_size', 32)
    with pytest.raises(ValueError) as info:
        create_transform(**kwargs)
    assert '\n' not in str(info.value) and str(info.value)


def test_non_pil_input_raises():
    with pytest.raises(TypeError, match='expected a PIL image'):
        create_transform(32)(np.zeros((32, 32, 3), np.uint8))
