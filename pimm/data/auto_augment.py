"""RandAugment for PIL images, following timm's ``rand-...`` config strings and op semantics.

Randomness uses the same generators, in the same order, as timm: Python's ``random`` for the
per-op probability, magnitude noise, sign flips and interpolation choice, and NumPy's global
generator for picking which ops run. Seeding both therefore reproduces timm's results exactly.
"""
import random
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

__all__ = ['AugmentOp', 'RandAugment', 'rand_augment_transform', 'rand_augment_ops', 'level_to_args', 'OP_NAMES',
           'RAND_TRANSFORMS', 'RAND_INCREASING_TRANSFORMS']

LEVEL_DENOM = 10.0  # an 'm' magnitude of 10 maps to the full argument range of every op
DEFAULT_FILL = (128, 128, 128)
DEFAULT_HPARAMS: Dict[str, Any] = {'translate_const': 250, 'img_mean': DEFAULT_FILL}
RANDOM_INTERPOLATION = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)
_INTERP_NAMES = {
    'nearest': Image.Resampling.NEAREST, 'bilinear': Image.Resampling.BILINEAR,
    'bicubic': Image.Resampling.BICUBIC, 'box': Image.Resampling.BOX,
    'hamming': Image.Resampling.HAMMING, 'lanczos': Image.Resampling.LANCZOS,
}
Interpolation = Union[int, str, Sequence[int]]
_BICUBIC = Image.Resampling.BICUBIC
Img = Image.Image


# ---------------------------------------------------------------- image ops (explicit arguments)

def _affine(img: Img, matrix: Tuple[float, ...], fillcolor: Any, resample: int) -> Img:
    return img.transform(img.size, Image.Transform.AFFINE, matrix, resample=resample, fillcolor=fillcolor)


def shear_x(img: Img, factor: float, fillcolor: Any = DEFAULT_FILL, resample: int = _BICUBIC) -> Img:
    """Horizontal shear: output (x, y) samples input (x + factor * y, y)."""
    return _affine(img, (1, factor, 0, 0, 1, 0), fillcolor, resample)


def shear_y(img: Img, factor: float, fillcolor: Any = DEFAULT_FILL, resample: int = _BICUBIC) -> Img:
    """Vertical shear: output (x, y) samples input (x, factor * x + y)."""
    return _affine(img, (1, 0, 0, factor, 1, 0), fillcolor, resample)


def translate_x_abs(img: Img, pixels: float, fillcolor: Any = DEFAULT_FILL, resample: int = _BICUBIC) -> Img:
    """Shift the content left by ``pixels`` (right when negative)."""
    return _affine(img, (1, 0, pixels, 0, 1, 0), fillcolor, resample)


def translate_y_abs(img: Img, pixels: float, fillcolor: Any = DEFAULT_FILL, resample: int = _BICUBIC) -> Img:
    """Shift the content up by ``pixels`` (down when negative)."""
    return _affine(img, (1, 0, 0, 0, 1, pixels), fillcolor, resample)


def translate_x_rel(img: Img, pct: float, fillcolor: Any = DEFAULT_FILL, resample: int = _BICUBIC) -> Img:
    """Horizontal shift by a fraction of the image width."""
    return translate_x_abs(img, pct * img.size[0], fillcolor, resample)


def translate_y_rel(img: Img, pct: float, fillcolor: Any = DEFAULT_FILL, resample: int = _BICUBIC) -> Img:
    """Vertical shift by a fraction of the image height."""
    return translate_y_abs(img, pct * img.size[1], fillcolor, resample)


def rotate(img: Img, degrees: float, fillcolor: Any = DEFAULT_FILL, resample: int = _BICUBIC) -> Img:
    """Counter-clockwise rotation about the centre, keeping the image size."""
    return img.rotate(degrees, resample=resample, fillcolor=fillcolor)


def auto_contrast(img: Img, **_: Any) -> Img:
    """Stretch every channel to the full 0..255 range."""
    return ImageOps.autocontrast(img)


def invert(img: Img, **_: Any) -> Img:
    """Negative image."""
    return ImageOps.invert(img)


def equalize(img: Img, **_: Any) -> Img:
    """Histogram equalisation."""
    return ImageOps.equalize(img)


def solarize(img: Img, thresh: int, **_: Any) -> Img:
    """Invert every pixel value at or above ``thresh``."""
    return ImageOps.solarize(img, thresh)


def solarize_add(img: Img, add: int, thresh: int = 128, **_: Any) -> Img:
    """Add ``add`` (saturating at 255) to pixel values below ``thresh``; L and RGB only."""
    if img.mode not in ('L', 'RGB'):
        return img
    table = [min(255, v + add) if v < thresh else v for v in range(256)]
    return img.point(table * len(img.getbands()))


def posterize(img: Img, bits: int, **_: Any) -> Img:
    """Keep the ``bits`` most significant bits of every channel (8 or more: unchanged, 0: black)."""
    if bits >= 8:
        return img
    if bits <= 0:  # Pillow >= 12 rejects 0 bits; older Pillow (and timm with it) gave a black image
        return img.point([0] * 256 * len(img.getbands()))
    return ImageOps.posterize(img, bits)


def color(img: Img, factor: float, **_: Any) -> Img:
    """Saturation blend: 0 grey, 1 unchanged."""
    return ImageEnhance.Color(img).enhance(factor)


def contrast(img: Img, factor: float, **_: Any) -> Img:
    """Contrast blend: 0 flat mean grey, 1 unchanged."""
    return ImageEnhance.Contrast(img).enhance(factor)


def brightness(img: Img, factor: float, **_: Any) -> Img:
    """Brightness blend: 0 black, 1 unchanged."""
    return ImageEnhance.Brightness(img).enhance(factor)


def sharpness(img: Img, factor: float, **_: Any) -> Img:
    """Sharpness blend: 0 smoothed, 1 unchanged, 2 sharpened."""
    return ImageEnhance.Sharpness(img).enhance(factor)


def gaussian_blur(img: Img, radius: float, **_: Any) -> Img:
    """Gaussian blur with the given radius."""
    return img.filter(ImageFilter.GaussianBlur(radius=radius))


def gaussian_blur_rand(img: Img, factor: float, **_: Any) -> Img:
    """Gaussian blur with a radius drawn uniformly from [0.1, 2 * factor]."""
    return gaussian_blur(img, random.uniform(0.1, 2.0 * factor))


def desaturate(img: Img, factor: float, **_: Any) -> Img:
    """Remove ``factor`` (0..1) of the colour saturation."""
    return color(img, min(1.0, max(0.0, 1.0 - factor)))


# ---------------------------------------------------------------- magnitude -> op arguments

def _flip_sign(v: float) -> float:
    # one uniform draw per call, negating on the upper half (the same draw timm makes)
    return -v if random.random() > 0.5 else v


def _signed(scale: float) -> Callable[[float, Dict], Tuple]:
    return lambda m, hp: (_flip_sign(m / LEVEL_DENOM * scale),)


def _enhance(m: float, hp: Dict) -> Tuple:
    return (m / LEVEL_DENOM * 1.8 + 0.1,)


def _enhance_increasing(m: float, hp: Dict) -> Tuple:
    return (max(0.1, 1.0 + _flip_sign(m / LEVEL_DENOM * 0.9)),)


def _posterize(m: float, hp: Dict) -> Tuple:
    return (int(m / LEVEL_DENOM * 4),)


def _solarize(m: float, hp: Dict) -> Tuple:
    return (min(256, int(m / LEVEL_DENOM * 256)),)


def _translate_rel(m: float, hp: Dict) -> Tuple:
    return (_flip_sign(m / LEVEL_DENOM * hp.get('translate_pct', 0.45)),)


def _translate_abs(m: float, hp: Dict) -> Tuple:
    return (_flip_sign(m / LEVEL_DENOM * float(hp.get('translate_const', 250))),)


def _linear(lo: float, hi: float) -> Callable[[float, Dict], Tuple]:
    return lambda m, hp: (max(lo, min(hi, lo + (hi - lo) * m / LEVEL_DENOM)),)


_LevelFn = Optional[Callable[[float, Dict], Tuple]]
# name -> (image op, magnitude-to-arguments); None means the op takes no argument
_OPS: Dict[str, Tuple[Callable[..., Img], _LevelFn]] = {
    'AutoContrast': (auto_contrast, None),
    'Equalize': (equalize, None),
    'Invert': (invert, None),
    'Rotate': (rotate, _signed(30.0)),
    'Posterize': (posterize, _posterize),
    'PosterizeIncreasing': (posterize, lambda m, hp: (4 - _posterize(m, hp)[0],)),
    'PosterizeOriginal': (posterize, lambda m, hp: (_posterize(m, hp)[0] + 4,)),
    'Solarize': (solarize, _solarize),
    'SolarizeIncreasing': (solarize, lambda m, hp: (256 - _solarize(m, hp)[0],)),
    'SolarizeAdd': (solarize_add, lambda m, hp: (min(128, int(m / LEVEL_DENOM * 110)),)),
    'Color': (color, _enhance),
    'ColorIncreasing': (color, _enhance_increasing),
    'Contrast': (contrast, _enhance),
    'ContrastIncreasing': (contrast, _enhance_increasing),
    'Brightness': (brightness, _enhance),
    'BrightnessIncreasing': (brightness, _enhance_increasing),
    'Sharpness': (sharpness, _enhance),
    'SharpnessIncreasing': (sharpness, _enhance_increasing),
    'ShearX': (shear_x, _signed(0.3)),
    'ShearY': (shear_y, _signed(0.3)),
    'TranslateX': (translate_x_abs, _translate_abs),
    'TranslateY': (translate_y_abs, _translate_abs),
    'TranslateXRel': (translate_x_rel, _translate_rel),
    'TranslateYRel': (translate_y_rel, _translate_rel),
    'Desaturate': (desaturate, _linear(0.5, 1.0)),
    'GaussianBlur': (gaussian_blur, _linear(0.1, 2.0)),
    'GaussianBlurRand': (gaussian_blur_rand, _linear(0.0, 1.0)),
}
OP_NAMES: Tuple[str, ...] = tuple(_OPS)
_GEOMETRIC = (rotate, shear_x, shear_y, translate_x_abs, translate_y_abs, translate_x_rel, translate_y_rel)


def level_to_args(name: str, magnitude: float, hparams: Optional[Dict] = None) -> Tuple:
    """The op arguments for ``name`` at ``magnitude`` (may draw a random sign)."""
    level_fn = _OPS[name][1]
    return () if level_fn is None else level_fn(magnitude, {**DEFAULT_HPARAMS, **(hparams or {})})


def _resolve_interpolation(value: Interpolation) -> Union[int, Tuple[int, ...]]:
    if isinstance(value, str):
        if value == 'random':
            return RANDOM_INTERPOLATION
        if value not in _INTERP_NAMES:
            raise ValueError(f"unknown interpolation {value!r}; valid: 'random', {', '.join(map(repr, _INTERP_NAMES))}")
        return _INTERP_NAMES[value]
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


class AugmentOp:
    """One named op applied with probability ``prob`` at a (possibly noisy) magnitude.

    hparams: ``img_mean`` fill colour, ``interpolation`` (PIL constant, name or sequence to pick
    from; default random bilinear/bicubic), ``translate_const``, ``translate_pct``,
    ``magnitude_std`` (inf: uniform in [0, magnitude]) and ``magnitude_max`` (clip bound, default 10).
    """

    def __init__(self, name: str, prob: float = 0.5, magnitude: float = 10, hparams: Optional[Dict] = None):
        if name not in _OPS:
            raise ValueError(f'unknown augmentation op {name!r}; valid: {", ".join(OP_NAMES)}')
        self.name = name
        self.aug_fn, self.level_fn = _OPS[name]
        self.prob = prob
        self.magnitude = magnitude
        self.hparams = dict(hparams if hparams else DEFAULT_HPARAMS)
        self.fillcolor = self.hparams.get('img_mean', DEFAULT_FILL)
        self.interpolation = _resolve_interpolation(self.hparams.get('interpolation', RANDOM_INTERPOLATION))
        self.magnitude_std = self.hparams.get('magnitude_std', 0)
        self.magnitude_max = self.hparams.get('magnitude_max', None)

    def sample_magnitude(self) -> float:
        """The magnitude for one application: noisy if ``magnitude_std`` > 0, clipped to [0, max]."""
        m = self.magnitude
        if self.magnitude_std == float('inf'):
            m = random.uniform(0, m)
        elif self.magnitude_std > 0:
            m = random.gauss(m, self.magnitude_std)
        return max(0.0, min(m, self.magnitude_max or LEVEL_DENOM))

    def __call__(self, img: Img) -> Img:
        if self.prob < 1.0 and random.random() > self.prob:
            return img
        magnitude = self.sample_magnitude()  # drawn even for argument-free ops, keeping timm's draw order
        args = self.level_fn(magnitude, self.hparams) if self.level_fn else ()
        if self.aug_fn not in _GEOMETRIC:
            return self.aug_fn(img, *args)
        resample = self.interpolation
        if isinstance(resample, tuple):
            resample = random.choice(resample)
        return self.aug_fn(img, *args, fillcolor=self.fillcolor, resample=resample)

    def __repr__(self) -> str:
        extra = f', mmax={self.magnitude_max}' if self.magnitude_max is not None else ''
        return f'AugmentOp(name={self.name}, p={self.prob}, m={self.magnitude}, mstd={self.magnitude_std}{extra})'


RAND_TRANSFORMS: Tuple[str, ...] = (
    'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color',
    'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel',
)
# the same slots, with the ops whose severity grows with magnitude
RAND_INCREASING_TRANSFORMS: Tuple[str, ...] = tuple(
    n + 'Increasing' if n in ('Posterize', 'Solarize', 'Color', 'Contrast', 'Brightness', 'Sharpness') else n
    for n in RAND_TRANSFORMS)
# 'w0': older timm's positional choice weights over the 15 slots above
_SLOT_WEIGHTS_W0 = (0.025, 0.005, 0.0, 0.3, 0.0, 0.005, 0.005, 0.025, 0.005, 0.005, 0.025, 0.2, 0.2, 0.1, 0.1)
# 't<name>' transform sets of current timm; a dict gives weighted choice without replacement
_NAMED_SETS: Dict[str, Union[Tuple[str, ...], Dict[str, float]]] = {
    'weights': {
        'Rotate': 3, 'ShearX': 2, 'ShearY': 2, 'TranslateXRel': 1, 'TranslateYRel': 1, 'ColorIncreasing': .25,
        'SharpnessIncreasing': 0.25, 'AutoContrast': 0.25, 'SolarizeIncreasing': .05, 'SolarizeAdd': .05,
        'ContrastIncreasing': .05, 'BrightnessIncreasing': .05, 'Equalize': .05, 'PosterizeIncreasing': 0.05,
        'Invert': 0.05,
    },
    '3a': ('SolarizeIncreasing', 'Desaturate', 'GaussianBlur'),
    '3aw': {
        'SolarizeIncreasing': 6, 'Desaturate': 6, 'GaussianBlur': 6, 'Rotate': 3, 'ShearX': 2, 'ShearY': 2,
        'PosterizeIncreasing': 1, 'AutoContrast': 1, 'ColorIncreasing': 1, 'SharpnessIncreasing': 1,
        'ContrastIncreasing': 1, 'BrightnessIncreasing': 1, 'Equalize': 1, 'Invert': 1,
    },
}


def rand_augment_ops(magnitude: float = 10, prob: float = 0.5, hparams: Optional[Dict] = None,
                     transforms: Optional[Sequence[str]] = None) -> List[AugmentOp]:
    """One :class:`AugmentOp` per name in ``transforms`` (default: the 15 standard ops)."""
    return [AugmentOp(n, prob=prob, magnitude=magnitude, hparams=hparams) for n in transforms or RAND_TRANSFORMS]


class RandAugment:
    """Apply ``num_layers`` ops drawn from ``ops`` (with replacement, or weighted without)."""

    def __init__(self, ops: List[AugmentOp], num_layers: int = 2, choice_weights: Optional[np.ndarray] = None):
        self.ops = ops
        self.num_layers = num_layers
        self.choice_weights = choice_weights

    def __call__(self, img: Img) -> Img:
        picks = np.random.choice(len(self.ops), self.num_layers, replace=self.choice_weights is None,
                                 p=self.choice_weights)
        for i in picks:
            img = self.ops[i](img)
        return img

    def __repr__(self) -> str:
        return f'RandAugment(n={self.num_layers}, ops=' + ''.join(f'\n\t{op}' for op in self.ops) + ')'


_KEYS = {'m': int, 'n': int, 'p': float, 'mstd': float, 'mmax': int, 'inc': int, 'w': int}
_VALID = "m<int> n<int> p<float> mstd<float> mmax<int> inc<0|1> w0 t<weights|3a|3aw>"


def _parse_sections(config_str: str) -> Dict[str, Any]:
    def bad(why: str) -> ValueError:
        return ValueError(f'RandAugment config {config_str!r}: {why}; expected rand-<sections> with {_VALID}')

    if not isinstance(config_str, str):
        raise bad('not a string')
    head, *sections = config_str.split('-')
    if head != 'rand':
        raise bad(f"first section {head!r} must be 'rand'")
    out: Dict[str, Any] = {}
    for sec in sections:
        if sec.startswith('t'):
            if sec[1:] not in _NAMED_SETS:
                raise bad(f'unknown transform set in section {sec!r}')
            key, value = 't', sec[1:]
        else:
            match = re.fullmatch(r'([a-z]+)(\d.*)', sec)
            if match is None or match.group(1) not in _KEYS:
                raise bad(f'unknown or malformed section {sec!r}')
            key, raw = match.groups()
            try:
                value = _KEYS[key](raw)
            except ValueError:
                kind = 'an integer' if _KEYS[key] is int else 'a number'
                raise bad(f'section {sec!r} needs {kind} after {key!r}') from None
        if key in out:
            raise bad(f'section {key!r} given twice')
        out[key] = value
    if out.get('inc', 0) not in (0, 1):
        raise bad('inc must be 0 or 1')
    if out.get('w', 0) != 0:
        raise bad(f"only weight index w0 exists, got w{out['w']}")
    if 'w' in out and 't' in out:
        raise bad('w0 and t<set> both choose weights; give one')
    if not 0.0 <= out.get('p', 0.5) <= 1.0:
        raise bad('p must be in [0, 1]')
    return out


def rand_augment_transform(config_str: str, hparams: Optional[Dict] = None) -> RandAugment:
    """Build RandAugment from a timm config string such as ``'rand-m9-n3-mstd0.5-inc1'``.

    Sections after ``rand`` (any order): ``m`` magnitude (default 10), ``n`` ops per image (2),
    ``p`` probability of each op (0.5), ``mstd`` magnitude noise std (> 100: uniform),
    ``mmax`` magnitude clip bound (10), ``inc1`` increasing-severity op set, ``w0`` older timm's
    choice weights, ``t<weights|3a|3aw>`` a named transform set. ``hparams`` as :class:`AugmentOp`;
    its ``magnitude_std``/``magnitude_max`` win over the string, as in timm. The caller's dict is
    not modified. Raises ValueError on a malformed string.
    """
    cfg = _parse_sections(config_str)
    hp = dict(hparams if hparams else DEFAULT_HPARAMS)
    if 'mstd' in cfg:
        hp.setdefault('magnitude_std', float('inf') if cfg['mstd'] > 100 else cfg['mstd'])
    if 'mmax' in cfg:
        hp.setdefault('magnitude_max', cfg['mmax'])
    names: Union[Sequence[str], Dict[str, float]] = RAND_INCREASING_TRANSFORMS if cfg.get('inc') else RAND_TRANSFORMS
    weights: Optional[np.ndarray] = None
    if 't' in cfg:
        names = _NAMED_SETS[cfg['t']]
    if isinstance(names, dict):
        names, weights = tuple(names), np.array(list(names.values()), dtype=np.float64)
    elif 'w' in cfg:
        weights = np.array(_SLOT_WEIGHTS_W0)
    if weights is not None:
        weights = weights / weights.sum()
        if cfg.get('n', 2) > np.count_nonzero(weights):
            raise ValueError(f'RandAugment config {config_str!r}: n is larger than the number of weighted ops')
    ops = rand_augment_ops(magnitude=cfg.get('m', LEVEL_DENOM), prob=cfg.get('p', 0.5), hparams=hp,
                           transforms=names)
    return RandAugment(ops, cfg.get('n', 2), choice_weights=weights)
