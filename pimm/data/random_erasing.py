"""Random Erasing (Zhong et al., https://arxiv.org/abs/1708.04896) on normalised NumPy images.

Follows timm's ``RandomErasing``: rectangle geometry is drawn from Python's ``random`` in the same
order as timm, so seeding ``random`` gives timm's rectangles; fill values come from NumPy's
global generator (timm uses torch's). ``pimm.data.prefetch`` applies the same rectangles to a
device batch with generators of its own.
"""
import math
import random
from typing import Optional, Tuple

import numpy as np

__all__ = ['RandomErasing']

_MODES = ('const', 'rand', 'pixel')
_ATTEMPTS = 10


class RandomErasing:
    """Erase random rectangles of a normalised float CHW image, or of each image of an NCHW batch.

    Args:
        probability: chance that an image is erased at all.
        min_area, max_area: range of the erased fraction of the image (split over the boxes).
        min_aspect, max_aspect: range of box height/width, sampled log-uniformly
            (``max_aspect`` defaults to ``1 / min_aspect``).
        mode: fill of the box: ``'const'`` zeros, ``'rand'`` one normal value per channel,
            ``'pixel'`` a normal value per element.
        min_count, max_count: number of boxes per erased image, uniform in this range
            (``max_count`` defaults to ``min_count``).
        num_splits: with > 1, the first ``batch // num_splits`` images of a batch stay clean.
    """

    def __init__(self, probability: float = 0.5, min_area: float = 0.02, max_area: float = 1 / 3,
                 min_aspect: float = 0.3, max_aspect: Optional[float] = None, mode: str = 'const',
                 min_count: int = 1, max_count: Optional[int] = None, num_splits: int = 0):
        mode = (mode or 'const').lower()
        if mode not in _MODES:
            raise ValueError(f"RandomErasing mode {mode!r} is unknown; valid: {', '.join(_MODES)}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f'RandomErasing probability {probability} must be in [0, 1]')
        if not 0.0 < min_area <= max_area:
            raise ValueError(f'RandomErasing area range ({min_area}, {max_area}) needs 0 < min_area <= max_area')
        max_aspect = max_aspect or 1.0 / min_aspect
        if not 0.0 < min_aspect <= max_aspect:
            raise ValueError(f'RandomErasing aspect range ({min_aspect}, {max_aspect}) needs 0 < min <= max')
        max_count = max_count or min_count
        if not 1 <= min_count <= max_count:
            raise ValueError(f'RandomErasing count range ({min_count}, {max_count}) needs 1 <= min <= max')
        self.probability = probability
        self.min_area = min_area
        self.max_area = max_area
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.mode = mode
        self.min_count = min_count
        self.max_count = max_count
        self.num_splits = num_splits

    def sample_boxes(self, img_h: int, img_w: int,
                     rng: Optional[random.Random] = None) -> Tuple[Tuple[int, int, int, int], ...]:
        """Draw the (top, left, h, w) boxes for one image; empty when it is not erased.

        A box is tried up to 10 times (area uniform, aspect log-uniform, both rounded) and dropped
        if no attempt fits strictly inside the image. ``rng`` is a ``random.Random`` (None: the
        ``random`` module's global generator, as timm).
        """
        rng = random if rng is None else rng
        if rng.random() > self.probability:
            return ()
        count = self.min_count
        if self.max_count != self.min_count:
            count = rng.randint(self.min_count, self.max_count)
        boxes = []
        for _ in range(count):
            for _ in range(_ATTEMPTS):
                area = rng.uniform(self.min_area, self.max_area) * img_h * img_w / count
                aspect = math.exp(rng.uniform(*self.log_aspect_ratio))
                h = int(round(math.sqrt(area * aspect)))
                w = int(round(math.sqrt(area / aspect)))
                if h < img_h and w < img_w:
                    top = rng.randint(0, img_h - h)
                    left = rng.randint(0, img_w - w)
                    boxes.append((top, left, h, w))
                    break
        return tuple(boxes)

    def _fill(self, chans: int, h: int, w: int, dtype: np.dtype) -> np.ndarray:
        if self.mode == 'pixel':
            return np.random.standard_normal((chans, h, w)).astype(dtype)
        if self.mode == 'rand':
            return np.random.standard_normal((chans, 1, 1)).astype(dtype)
        return np.zeros((chans, 1, 1), dtype=dtype)

    def _erase(self, img: np.ndarray) -> None:
        chans, img_h, img_w = img.shape
        for top, left, h, w in self.sample_boxes(img_h, img_w):
            img[:, top:top + h, left:left + w] = self._fill(chans, h, w, img.dtype)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """Erase in place and return ``img`` (CHW, or NCHW with each sample drawn independently)."""
        if not isinstance(img, np.ndarray) or img.ndim not in (3, 4):
            kind = f'{img.ndim}-d array' if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(f'RandomErasing expects a CHW or NCHW numpy array, got a {kind}')
        if not np.issubdtype(img.dtype, np.floating):
            raise ValueError(f'RandomErasing expects a normalised float array, got dtype {img.dtype}')
        if img.ndim == 3:
            self._erase(img)
            return img
        start = len(img) // self.num_splits if self.num_splits > 1 else 0
        for i in range(start, len(img)):
            self._erase(img[i])
        return img

    def __repr__(self) -> str:
        return f'RandomErasing(p={self.probability}, mode={self.mode}, count=({self.min_count}, {self.max_count}))'
