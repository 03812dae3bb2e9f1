"""Compose the training and evaluation pipelines the way timm's ``create_transform`` does."""
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

from .constants import DEFAULT_CROP_PCT, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from .transforms import (INTERPOLATION_NAMES, CenterCropArray, ColorJitter, RandomHorizontalFlip,
                         RandomResizedCropAndInterpolation, ResizeShorterSide, ResizeToCover, ToNormalizedCHW,
                         ToUint8CHW, TransformPipeline, pil_interpolation)

__all__ = ['create_transform', 'resolve_image_size']

InputSize = Union[int, Sequence[int]]


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def resolve_image_size(input_size: InputSize) -> Tuple[int, int]:
    """(H, W) from an int, ``(H, W)`` or ``(3, H, W)``; anything else raises ValueError."""
    if isinstance(input_size, numbers.Integral) and not isinstance(input_size, bool):
        sizes = (int(input_size), int(input_size))
    elif isinstance(input_size, (tuple, list)) and len(input_size) in (2, 3) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in input_size):
        if len(input_size) == 3 and input_size[0] != 3:
            raise ValueError(f'input_size {tuple(input_size)} must have 3 channels, as (3, H, W)')
        sizes = (int(input_size[-2]), int(input_size[-1]))
    else:
        raise ValueError(f'input_size must be an int, (H, W) or (3, H, W), got {input_size!r}')
    if min(sizes) <= 0:
        raise ValueError(f'input_size must be positive, got {input_size!r}')
    return sizes


def _check_range(name: str, value, low: float, high: float) -> float:
    if not _is_number(value) or not low <= value <= high:
        raise ValueError(f'{name} must be a number in [{low}, {high}], got {value!r}')
    return float(value)


def _check_interval(name: str, value) -> Tuple[float, float]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2 or not all(_is_number(v) for v in value)
            or not 0 < value[0] <= value[1]):
        raise ValueError(f'{name} must be a pair (min, max) with 0 < min <= max, got {value!r}')
    return float(value[0]), float(value[1])


def _check_mean_std(mean, std) -> None:
    for name, value in (('mean', mean), ('std', std)):
        if not isinstance(value, (tuple, list)) or len(value) != 3 or not all(_is_number(v) for v in value):
            raise ValueError(f'{name} must be 3 numbers (one per RGB channel), got {value!r}')
    if min(std) <= 0:
        raise ValueError(f'std must be positive, got {std!r}')


def _jitter_amounts(color_jitter) -> Tuple[float, ...]:
    if color_jitter is None:
        return (0., 0., 0.)
    if _is_number(color_jitter):
        amounts = (float(color_jitter),) * 3  # a scalar jitters brightness, contrast, saturation; no hue
    elif isinstance(color_jitter, (tuple, list)) and len(color_jitter) in (3, 4) and all(
            _is_number(v) for v in color_jitter):
        amounts = tuple(float(v) for v in color_jitter)
    else:
        raise ValueError(f'color_jitter must be a number or 3/4 numbers, got {color_jitter!r}')
    if min(amounts) < 0 or (len(amounts) == 4 and amounts[3] > 0.5):
        raise ValueError(f'color_jitter amounts must be >= 0 (hue <= 0.5), got {color_jitter!r}')
    return amounts


def _eval_steps(image_size: Tuple[int, int], crop_pct: Optional[float], interpolation: str, fast_decode: bool):
    if crop_pct is None:
        crop_pct = DEFAULT_CROP_PCT
    if not _is_number(crop_pct) or crop_pct <= 0:
        raise ValueError(f'crop_pct must be a positive number, got {crop_pct!r}')
    # timm: floor of a float division, per side; equal sides use torchvision's shorter-side Resize
    scale_size = tuple(math.floor(side / crop_pct) for side in image_size)
    if scale_size[0] == scale_size[1]:
        resize = ResizeShorterSide(scale_size[0], interpolation)
    else:
        resize = ResizeToCover(scale_size, interpolation)
    draft_size = (scale_size[1], scale_size[0]) if fast_decode else None
    return [resize, CenterCropArray(image_size)], draft_size


def _train_steps(image_size, scale, ratio, interpolation, hflip, color_jitter, auto_augment, mean):
    steps = [RandomResizedCropAndInterpolation(image_size, scale=_check_interval('scale', scale),
                                               ratio=_check_interval('ratio', ratio), interpolation=interpolation)]
    if _check_range('hflip', hflip, 0., 1.) > 0:
        steps.append(RandomHorizontalFlip(hflip))
    if auto_augment:
        if not isinstance(auto_augment, str) or not auto_augment.startswith('rand'):
            raise ValueError(f"unsupported auto_augment {auto_augment!r}: only RandAugment strings "
                             f"such as 'rand-m9-mstd0.5' are supported")
        from .auto_augment import rand_augment_transform  # imported here: optional until used
        hparams = dict(translate_const=int(min(image_size) * 0.45),
                       img_mean=tuple(min(255, round(255 * m)) for m in mean))
        if interpolation != 'random':
            hparams['interpolation'] = pil_interpolation(interpolation)
        steps.append(rand_augment_transform(auto_augment, hparams))
    else:
        amounts = _jitter_amounts(color_jitter)
        if any(amounts):
            steps.append(ColorJitter(*amounts))
    return steps


def create_transform(
        input_size: InputSize,
        is_training: bool = False,
        interpolation: str = 'bilinear',
        crop_pct: Optional[float] = None,
        mean: Tuple[float, float, float] = IMAGENET_DEFAULT_MEAN,
        std: Tuple[float, float, float] = IMAGENET_DEFAULT_STD,
        scale: Tuple[float, float] = (0.08, 1.0),
        ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
        hflip: float = 0.5,
        color_jitter: Union[float, Sequence[float], None] = 0.4,
        auto_augment: Optional[str] = None,
        re_prob: float = 0.,
        re_mode: str = 'const',
        re_count: int = 1,
        fast_decode: bool = False,
        use_prefetcher: bool = False,
) -> TransformPipeline:
    """A callable RGB PIL image -> normalised float32 CHW array, with timm's semantics.

    Evaluation: resize the shorter side to ``floor(size / crop_pct)`` (crop_pct None: 0.875),
    centre crop to the input size, normalise; equal to ``timm.data.create_transform`` to
    float32 rounding. Training: random resized crop, horizontal flip, RandAugment if
    ``auto_augment`` is given else colour jitter, normalise, then random erasing if
    ``re_prob > 0``. ``fast_decode`` (evaluation only) lets the dataset decode JPEGs with
    DCT downscaling: an approximation that changes pixels.

    ``use_prefetcher`` (timm's flag) ends the pipeline in a uint8 CHW array instead, without
    normalisation or random erasing: :func:`~pimm.data.create_loader` does both on the device
    (``re_*`` are still checked here).
    """
    image_size = resolve_image_size(input_size)
    _check_mean_std(mean, std)
    if interpolation not in INTERPOLATION_NAMES and not (is_training and interpolation == 'random'):
        allowed = INTERPOLATION_NAMES + (('random',) if is_training else ())
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {', '.join(allowed)}")
    draft_size = None
    if is_training:
        if fast_decode:
            raise ValueError('fast_decode is an evaluation-only approximation; it cannot be used with is_training')
        steps = _train_steps(image_size, scale, ratio, interpolation, hflip, color_jitter, auto_augment, mean)
    else:
        steps, draft_size = _eval_steps(image_size, crop_pct, interpolation, fast_decode)
    erasing = None
    if is_training and _check_range('re_prob', re_prob, 0., 1.) > 0:
        if not isinstance(re_count, numbers.Integral) or isinstance(re_count, bool) or re_count < 1:
            raise ValueError(f're_count must be an integer >= 1, got {re_count!r}')
        from .random_erasing import RandomErasing  # imported here: optional until used
        erasing = RandomErasing(float(re_prob), mode=re_mode, max_count=int(re_count))
    if use_prefetcher:
        steps.append(ToUint8CHW())
    else:
        steps.append(ToNormalizedCHW(mean, std))
        if erasing is not None:
            steps.append(erasing)
    return TransformPipeline(steps, (3,) + image_size, draft_size=draft_size)
