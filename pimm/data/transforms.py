"""Individual image transforms with timm/torchvision semantics, producing numpy arrays.

PIL images flow through the geometric and colour steps; the last step turns them into
normalised float32 CHW arrays, or into uint8 CHW arrays that the loader normalises on the
device (``pimm.data.prefetch``). Randomness comes from Python's ``random`` module only, so
seeding ``random`` (the loader does it per worker) makes every transform reproducible.
"""
import math
import random
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageEnhance

__all__ = ['INTERPOLATION_NAMES', 'pil_interpolation', 'ResizeShorterSide', 'ResizeToCover', 'CenterCropArray',
           'RandomResizedCropAndInterpolation', 'RandomHorizontalFlip', 'ColorJitter', 'ToNormalizedCHW',
           'ToUint8CHW', 'TransformPipeline']

_PIL_INTERPOLATIONS = {
    'nearest': Image.Resampling.NEAREST,
    'bilinear': Image.Resampling.BILINEAR,
    'bicubic': Image.Resampling.BICUBIC,
    'box': Image.Resampling.BOX,
    'hamming': Image.Resampling.HAMMING,
    'lanczos': Image.Resampling.LANCZOS,
}
INTERPOLATION_NAMES = tuple(_PIL_INTERPOLATIONS)
# timm's 'random' interpolation picks one of these per image (same order, so random.choice agrees)
RANDOM_INTERPOLATIONS = ('bilinear', 'bicubic')

ImageOrArray = Union[Image.Image, np.ndarray]


def pil_interpolation(name: str) -> int:
    """The PIL resampling filter for a timm interpolation name ('bilinear', 'bicubic', ...)."""
    try:
        return _PIL_INTERPOLATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown interpolation {name!r}; expected one of {', '.join(INTERPOLATION_NAMES)}") from None


def _pair(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


class ResizeShorterSide:
    """Resize so the shorter side is ``size``, like torchvision ``Resize(int)`` on PIL images.

    The longer side is ``int(size * long / short)`` (truncated, not rounded), and an image
    that already has the output size is returned unchanged.
    """

    def __init__(self, size: int, interpolation: str = 'bilinear') -> None:
        self.size = int(size)
        self.interpolation = interpolation
        self._resample = pil_interpolation(interpolation)

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        """(width, height) after resizing an image of ``width`` x ``height``."""
        if width <= height:
            return self.size, int(self.size * height / width)
        return int(self.size * width / height), self.size

    def __call__(self, img: Image.Image) -> Image.Image:
        size = self.output_size(*img.size)
        return img if size == img.size else img.resize(size, self._resample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, interpolation={self.interpolation})'


class ResizeToCover:
    """Resize keeping the aspect ratio so both sides cover ``size=(h, w)`` (timm ``ResizeKeepRatio``).

    The scale is the smaller of the two side ratios and each side is ``round(side / ratio)``
    (Python's round-half-to-even). timm uses this for non-square evaluation sizes.
    """

    def __init__(self, size: Tuple[int, int], interpolation: str = 'bilinear') -> None:
        self.size = _pair(size)
        self.interpolation = interpolation
        self._resample = pil_interpolation(interpolation)

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        """(width, height) after resizing an image of ``width`` x ``height``."""
        ratio = min(height / self.size[0], width / self.size[1])
        return round(width / ratio), round(height / ratio)

    def __call__(self, img: Image.Image) -> Image.Image:
        size = self.output_size(*img.size)
        return img if size == img.size else img.resize(size, self._resample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, interpolation={self.interpolation})'


class CenterCropArray:
    """Centre crop to ``size=(h, w)`` like torchvision ``CenterCrop``, returning a uint8 HWC array.

    Offsets are ``int(round((side - crop) / 2.0))`` (round-half-to-even); an image smaller
    than the crop is first zero-padded with torchvision's split of the border. The crop
    is a slice of the decoded pixels, not a copy.
    """

    def __init__(self, size: Union[int, Tuple[int, int]]) -> None:
        self.size = _pair(size)

    def __call__(self, img: ImageOrArray) -> np.ndarray:
        arr = np.asarray(img)
        crop_h, crop_w = self.size
        height, width = arr.shape[:2]
        if crop_h > height or crop_w > width:
            pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
            pad = [(pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2)] + [(0, 0)] * (arr.ndim - 2)
            arr = np.pad(arr, pad)
            height, width = arr.shape[:2]
        top = int(round((height - crop_h) / 2.0))
        left = int(round((width - crop_w) / 2.0))
        return arr[top:top + crop_h, left:left + crop_w]

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


class RandomResizedCropAndInterpolation:
    """Random area/aspect crop resized to ``size=(h, w)`` (timm's class of the same name).

    Area fraction is uniform in ``scale`` and log aspect ratio uniform in ``log(ratio)``;
    after 10 rejected attempts the largest central crop within ``ratio`` is used.
    ``interpolation='random'`` picks bilinear or bicubic per call. The Python ``random``
    calls are made in the same order as timm's, so equal seeds give equal crops.
    """

    def __init__(self, size: Union[int, Tuple[int, int]], scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3. / 4., 4. / 3.), interpolation: str = 'bilinear') -> None:
        self.size = _pair(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = interpolation
        if interpolation == 'random':
            self._resamples = tuple(pil_interpolation(n) for n in RANDOM_INTERPOLATIONS)
        else:
            self._resamples = (pil_interpolation(interpolation),)

    def get_params(self, width: int, height: int) -> Tuple[int, int, int, int]:
        """A random crop ``(top, left, crop_height, crop_width)`` of a ``width`` x ``height`` image."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = random.uniform(*self.scale) * area
            aspect = math.exp(random.uniform(*log_ratio))
            crop_w = int(round(math.sqrt(target_area * aspect)))
            crop_h = int(round(math.sqrt(target_area / aspect)))
            if crop_w <= width and crop_h <= height:
                top = random.randint(0, height - crop_h)
                left = random.randint(0, width - crop_w)
                return top, left, crop_h, crop_w
        # fallback: the whole image, trimmed to the nearest allowed aspect ratio
        image_ratio = width / height
        crop_w, crop_h = width, height
        if image_ratio < min(self.ratio):
            crop_h = int(round(width / min(self.ratio)))
        elif image_ratio > max(self.ratio):
            crop_w = int(round(height * max(self.ratio)))
        return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w

    def __call__(self, img: Image.Image) -> Image.Image:
        top, left, crop_h, crop_w = self.get_params(*img.size)
        resample = random.choice(self._resamples) if len(self._resamples) > 1 else self._resamples[0]
        crop = img.crop((left, top, left + crop_w, top + crop_h))
        out_size = (self.size[1], self.size[0])
        return crop if crop.size == out_size else crop.resize(out_size, resample)

    def __repr__(self) -> str:
        interp = 'random(bilinear, bicubic)' if self.interpolation == 'random' else self.interpolation
        scale = tuple(round(s, 4) for s in self.scale)
        ratio = tuple(round(r, 4) for r in self.ratio)
        return f'{type(self).__name__}(size={self.size}, scale={scale}, ratio={ratio}, interpolation={interp})'


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if random.random() < self.p else img

    def __repr__(self) -> str:
        return f'{type(self).__name__}(p={self.p})'


def _shift_hue(img: Image.Image, hue_factor: float) -> Image.Image:
    # rotate the 8-bit HSV hue channel by hue_factor of a full turn, wrapping around like uint8
    hue, sat, val = img.convert('HSV').split()
    shift = int(hue_factor * 255) % 256
    hue_arr = ((np.asarray(hue, dtype=np.uint16) + shift) % 256).astype(np.uint8)
    return Image.merge('HSV', (Image.fromarray(hue_arr, 'L'), sat, val)).convert(img.mode)


class ColorJitter:
    """Random brightness, contrast, saturation (and optionally hue), applied in random order.

    Like torchvision's ColorJitter on PIL images: each enabled factor is uniform in
    ``[max(0, 1 - j), 1 + j]`` (hue: a shift uniform in ``[-hue, hue]`` of a full turn).
    """

    def __init__(self, brightness: float = 0., contrast: float = 0., saturation: float = 0., hue: float = 0.) -> None:
        self.brightness, self.contrast, self.saturation, self.hue = (float(brightness), float(contrast),
                                                                     float(saturation), float(hue))
        self._ops: List[Tuple[Callable[[Image.Image, float], Image.Image], float, float]] = []
        for enhancer, amount in ((ImageEnhance.Brightness, self.brightness), (ImageEnhance.Contrast, self.contrast),
                                 (ImageEnhance.Color, self.saturation)):
            if amount > 0:
                self._ops.append((lambda im, f, e=enhancer: e(im).enhance(f), max(0., 1. - amount), 1. + amount))
        if self.hue > 0:
            self._ops.append((_shift_hue, -self.hue, self.hue))

    def __call__(self, img: Image.Image) -> Image.Image:
        order = list(range(len(self._ops)))
        random.shuffle(order)
        for i in order:
            apply, low, high = self._ops[i]
            img = apply(img, random.uniform(low, high))
        return img

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, '
                f'saturation={self.saturation}, hue={self.hue})')


def _rgb_pixels(img: ImageOrArray, channels: int) -> np.ndarray:
    pixels = np.asarray(img)
    if pixels.ndim != 3 or pixels.shape[2] != channels or pixels.dtype != np.uint8:
        raise ValueError(f'expected uint8 HWC pixels with {channels} channels, '
                         f'got {pixels.dtype} array of shape {pixels.shape}')
    return pixels


class ToNormalizedCHW:
    """uint8 HWC pixels (PIL image or array) to float32 CHW ``(x / 255 - mean) / std``.

    One table look-up per channel: the 256 possible values of each channel are normalised
    once, with the same float32 operations as torchvision's ``ToTensor`` + ``Normalize``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        levels = np.arange(256, dtype=np.float32) / np.float32(255)
        self._table = ((levels[None, :] - np.asarray(self.mean, np.float32)[:, None])
                       / np.asarray(self.std, np.float32)[:, None]).astype(np.float32)

    def __call__(self, img: ImageOrArray) -> np.ndarray:
        pixels = _rgb_pixels(img, len(self.mean))
        out = np.empty((pixels.shape[2],) + pixels.shape[:2], dtype=np.float32)
        for c in range(pixels.shape[2]):
            np.take(self._table[c], pixels[:, :, c], out=out[c])
        return out

    def __repr__(self) -> str:
        return f'{type(self).__name__}(mean={self.mean}, std={self.std})'


class ToUint8CHW:
    """uint8 HWC pixels (PIL image or array) to a contiguous uint8 CHW array, values unchanged.

    The end of a ``use_prefetcher`` pipeline: a quarter of float32's bytes through the loader's
    shared memory; the loader normalises on the device with ToNormalizedCHW's arithmetic.
    """

    def __call__(self, img: ImageOrArray) -> np.ndarray:
        return np.ascontiguousarray(_rgb_pixels(img, 3).transpose(2, 0, 1))

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


class TransformPipeline:
    """Steps applied in order to an RGB PIL image, ending in a CHW array (float32 or uint8).

    ``output_shape`` is the (C, H, W) shape every output has; ``draft_size`` is the JPEG
    draft request for the opt-in approximate fast decode (None: decode exactly).
    """

    def __init__(self, steps: Sequence[Callable], output_shape: Tuple[int, int, int],
                 draft_size: Optional[Tuple[int, int]] = None) -> None:
        self.steps = list(steps)
        self.output_shape = tuple(output_shape)
        self.draft_size = draft_size

    def __call__(self, img: Image.Image) -> np.ndarray:
        if not isinstance(img, Image.Image):
            raise TypeError(f'expected a PIL image, got {type(img).__name__}')
        if img.mode != 'RGB':
            img = img.convert('RGB')
        for step in self.steps:
            img = step(img)
        return img

    def __repr__(self) -> str:
        lines = [f'    {step!r},' for step in self.steps]
        if self.draft_size is not None:
            width, height = self.draft_size
            lines.append(f'    fast_decode: JPEG DCT-domain downscale to >= {width}x{height} (approximate),')
        return f'{type(self).__name__}(\n' + '\n'.join(lines) + '\n)'
