"""RandAugment parity with timm.data.auto_augment: ops, magnitude mapping, config parsing, bad strings."""
import random

import numpy as np
import pytest
from PIL import Image
from timm.data import auto_augment as T

from pimm.data import auto_augment as P

HP = dict(translate_const=40, img_mean=(124, 116, 104))
BILINEAR, BICUBIC = Image.Resampling.BILINEAR, Image.Resampling.BICUBIC


@pytest.fixture(scope='module')
def img():
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:36, 0:44]
    base = np.stack([xx * 5, yy * 6, (xx + yy) * 3], axis=-1) % 256
    noisy = np.clip(base + rng.randint(-20, 20, base.shape), 0, 255)
    return Image.fromarray(noisy.astype(np.uint8))


@pytest.fixture
def timm_old_posterize(monkeypatch):
    """Pillow >= 12 rejects posterize(0 bits), which timm can ask for; give timm the old-Pillow result."""
    def posterize(img, bits, **kw):
        return img.point([0] * 256 * len(img.getbands())) if bits <= 0 else T.posterize(img, bits, **kw)
    for name in ('Posterize', 'PosterizeIncreasing', 'PosterizeOriginal'):
        monkeypatch.setitem(T.NAME_TO_OP, name, posterize)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)  # every op is a PIL op: exact


GEO = dict(fillcolor=(124, 116, 104))
OP_CASES = [
    (P.auto_contrast, T.auto_contrast, (), {}),
    (P.equalize, T.equalize, (), {}),
    (P.invert, T.invert, (), {}),
    (P.rotate, T.rotate, (-17.5,), dict(GEO, resample=BICUBIC)),
    (P.rotate, T.rotate, (27.0,), dict(GEO, resample=BILINEAR)),
    (P.posterize, T.posterize, (3,), {}),
    (P.posterize, T.posterize, (8,), {}),
    (P.solarize, T.solarize, (100,), {}),
    (P.solarize, T.solarize, (256,), {}),
    (P.solarize_add, T.solarize_add, (99,), {}),
    (P.color, T.color, (0.37,), {}),
    (P.contrast, T.contrast, (1.72,), {}),
    (P.brightness, T.brightness, (0.55,), {}),
    (P.sharpness, T.sharpness, (1.9,), {}),
    (P.shear_x, T.shear_x, (0.27,), dict(GEO, resample=BICUBIC)),
    (P.shear_y, T.shear_y, (-0.21,), dict(GEO, resample=BILINEAR)),
    (P.translate_x_rel, T.translate_x_rel, (0.4,), dict(GEO, resample=BICUBIC)),
    (P.translate_y_rel, T.translate_y_rel, (-0.33,), dict(GEO, resample=BILINEAR)),
    (P.translate_x_abs, T.translate_x_abs, (-7.5,), dict(GEO, resample=BICUBIC)),
    (P.translate_y_abs, T.translate_y_abs, (11,), dict(GEO, resample=BICUBIC)),
    (P.gaussian_blur, T.gaussian_blur, (1.3,), {}),
    (P.desaturate, T.desaturate, (0.8,), {}),
]


@pytest.mark.parametrize('ours, theirs, args, kwargs', OP_CASES, ids=lambda v: getattr(v, '__name__', None))
def test_op_functions_match_timm(img, ours, theirs, args, kwargs):
    _same(ours(img, *args, **kwargs), theirs(img, *args, **dict(kwargs)))


@pytest.mark.parametrize('draw', [0.25, 0.75])  # the sign-flip draw: kept below / above 0.5
def test_magnitude_to_args_match_timm(monkeypatch, draw):
    monkeypatch.setattr(random, 'random', lambda: draw)
    for name in P.OP_NAMES:
        for m in (0, 1, 2.5, 5, 7.3, 9, 10, 13):
            expected = T.LEVEL_TO_ARG[name](m, HP) if T.LEVEL_TO_ARG[name] else ()
            assert P.level_to_args(name, m, HP) == pytest.approx(expected), (name, m)


@pytest.mark.parametrize('name', P.OP_NAMES)
def test_augment_op_matches_timm_seeded(img, timm_old_posterize, name):
    for m, mstd in ((3, 0.0), (9, 0.5), (10, float('inf'))):
        hp = dict(HP, magnitude_std=mstd)
        ours, theirs = P.AugmentOp(name, 1.0, m, hp), T.AugmentOp(name, 1.0, m, hp)
        for seed in range(3):
            random.seed(seed)
            expected = theirs(img)
            random.seed(seed)
            _same(ours(img), expected)


CONFIGS = ['rand-m9-mstd0.5', 'rand-m9-n3-mstd0.5-inc1', 'rand-m7-n2-mstd1-mmax10-p0.5', 'rand-m2-n4-mstd0.5',
           'rand-m10-n3-inc1', 'rand-m9-mstd101', 'rand-m15-mmax20-mstd2', 'rand-n3-tweights', 'rand-m8-t3aw',
           'rand-m8-n1-t3a', 'rand-p1-n1']


@pytest.mark.parametrize('config', CONFIGS)
def test_rand_augment_matches_timm_seeded(img, timm_old_posterize, config):
    ours, theirs = P.rand_augment_transform(config, dict(HP)), T.rand_augment_transform(config, dict(HP))
    for seed in range(8):
        random.seed(seed)
        np.random.seed(seed)
        expected = theirs(img)
        random.seed(seed)
        np.random.seed(seed)
        _same(ours(img), expected)


@pytest.mark.parametrize('config', CONFIGS + ['rand', 'rand-inc0'])
@pytest.mark.parametrize('hparams', [None, dict(HP, interpolation=BILINEAR)])
def test_config_parsing_matches_timm(config, hparams):
    ours = P.rand_augment_transform(config, dict(hparams) if hparams else None)
    theirs = T.rand_augment_transform(config, dict(hparams) if hparams else None)
    assert ours.num_layers == theirs.num_layers
    assert [op.name for op in ours.ops] == [op.name for op in theirs.ops]
    for a, b in zip(ours.ops, theirs.ops):
        assert (a.prob, a.magnitude, a.magnitude_std, a.magnitude_max) == (b.prob, b.magnitude, b.magnitude_std,
                                                                           b.magnitude_max)
        assert a.fillcolor == b.kwargs['fillcolor']
        assert a.interpolation == b.kwargs['resample']
    if theirs.choice_weights is None:
        assert ours.choice_weights is None
    else:
        np.testing.assert_allclose(ours.choice_weights, theirs.choice_weights, rtol=1e-12)


def test_w0_uses_older_timm_slot_weights():
    # older timm: _RAND_CHOICE_WEIGHTS_0 over the 15 standard slots (current timm dropped 'w')
    old = {'Rotate': 0.3, 'ShearX': 0.2, 'ShearY': 0.2, 'TranslateXRel': 0.1, 'TranslateYRel': 0.1, 'Color': .025,
           'Sharpness': 0.025, 'AutoContrast': 0.025, 'Solarize': .005, 'SolarizeAdd': .005, 'Contrast': .005,
           'Brightness': .005, 'Equalize': .005, 'Posterize': 0, 'Invert': 0}
    expected = np.array([old[n] for n in T._RAND_TRANSFORMS])
    ra = P.rand_augment_transform('rand-m7-n2-mstd1-mmax10-w0-p0.5', dict(HP))
    np.testing.assert_allclose(ra.choice_weights, expected / expected.sum())
    assert [op.name for op in ra.ops] == list(T._RAND_TRANSFORMS)
    assert (ra.num_layers, ra.ops[0].prob, ra.ops[0].magnitude, ra.ops[0].magnitude_max) == (2, 0.5, 7, 10)
    inc = P.rand_augment_transform('rand-m9-w0-inc1', dict(HP))
    assert [op.name for op in inc.ops] == list(T._RAND_INCREASING_TRANSFORMS)
    np.testing.assert_allclose(inc.choice_weights, ra.choice_weights)
    np.random.seed(0)
    inc(Image.new('RGB', (8, 8)))  # weighted choice without replacement works


@pytest.mark.parametrize('config, bad_part', [
    ('rand-mX', "'mX'"), ('rand-q3', "'q3'"), ('foo-m9', "'foo'"), ('rand-m9.5', "'m9.5'"),
    ('rand-n', "'n'"), ('rand-tfoo', "'tfoo'"), ('rand-w1', 'w1'), ('rand-inc2', 'inc'), ('rand-p1.5', 'p'),
    ('rand-m9-m3', "'m'"), ('rand-w0-tweights', 'w0'), ('', "''"), ('rand-mstdx', "'mstdx'"),
])
def test_malformed_config_raises_value_error(config, bad_part):
    with pytest.raises(ValueError) as err:
        P.rand_augment_transform(config, dict(HP))
    msg = str(err.value)
    assert bad_part in msg and '\n' not in msg and 'expected rand-' in msg


def test_bad_interpolation_and_op_name():
    with pytest.raises(ValueError, match='interpolation'):
        P.rand_augment_transform('rand-m9', dict(HP, interpolation='cubicle'))
    with pytest.raises(ValueError, match='Rotate'):
        P.AugmentOp('Rotat')


def test_hparams_not_mutated_and_explicit_values_win():
    hp = dict(HP, magnitude_std=0.2)
    ra = P.rand_augment_transform('rand-m9-mstd0.5-mmax12', hp)
    assert hp == dict(HP, magnitude_std=0.2)
    assert ra.ops[0].magnitude_std == 0.2 and ra.ops[0].magnitude_max == 12
    assert P.rand_augment_transform('rand-m9', dict(HP, interpolation='bilinear')).ops[3].interpolation == BILINEAR


def test_magnitude_sampling_noise_and_clipping():
    random.seed(0)
    uniform = P.AugmentOp('Rotate', 1.0, 6, dict(magnitude_std=float('inf')))
    draws = np.array([uniform.sample_magnitude() for _ in range(2000)])
    assert draws.min() >= 0 and draws.max() <= 6 and abs(draws.mean() - 3) < 0.2
    noisy = P.AugmentOp('Rotate', 1.0, 9.5, dict(magnitude_std=2.0))
    draws = np.array([noisy.sample_magnitude() for _ in range(2000)])
    assert len(np.unique(draws)) > 100
    assert draws.max() == 10.0  # clipped to the default bound
    bounded = P.AugmentOp('Rotate', 1.0, 15, dict(magnitude_max=20))
    assert bounded.sample_magnitude() == 15


def test_posterize_zero_bits_is_black(img):
    assert np.asarray(P.posterize(img, 0)).max() == 0  # older-Pillow behaviour; Pillow 12+ would raise
