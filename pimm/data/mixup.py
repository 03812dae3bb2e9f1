"""Mixup and CutMix on Paddle batches, with timm's ``Mixup`` semantics.

mixup: https://arxiv.org/abs/1710.09412, CutMix: https://arxiv.org/abs/1905.04899.
Every sample is mixed with its mirror in the batch (sample ``i`` with ``N - 1 - i``). Lambdas and
boxes are drawn from NumPy's global generator in the same order as timm, so seeding NumPy
reproduces timm's draws.
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle

__all__ = ['Mixup', 'one_hot', 'mixup_target', 'rand_bbox', 'rand_bbox_minmax', 'cutmix_bbox_and_lam']

Box = Tuple[int, int, int, int]  # (y_low, y_high, x_low, x_high), high exclusive
Lam = Union[float, np.ndarray]
_MODES = ('batch', 'pair', 'elem')


def one_hot(target: paddle.Tensor, num_classes: int, on_value: float = 1.0, off_value: float = 0.0) -> paddle.Tensor:
    """float32 [N, num_classes]: ``on_value`` at each target class, ``off_value`` elsewhere."""
    hot = paddle.nn.functional.one_hot(target.reshape([-1]).astype('int64'), num_classes) > 0
    return paddle.where(hot, paddle.full(hot.shape, on_value, 'float32'), paddle.full(hot.shape, off_value, 'float32'))


def mixup_target(target: paddle.Tensor, num_classes: int, lam: Union[float, paddle.Tensor] = 1.0,
                 smoothing: float = 0.0) -> paddle.Tensor:
    """Label-smoothed one-hot targets mixed with the flipped batch: ``y * lam + y.flip(0) * (1 - lam)``.

    ``lam`` is a number or an [N, 1] tensor. Smoothing moves ``smoothing`` of the mass uniformly
    over all classes (so the true class keeps ``1 - smoothing + smoothing / num_classes``).
    """
    off_value = smoothing / num_classes
    y = one_hot(target, num_classes, on_value=1.0 - smoothing + off_value, off_value=off_value)
    return y * lam + y.flip([0]) * (1.0 - lam)


def rand_bbox(img_shape: Sequence[int], lam: float, margin: float = 0.0,
              count: Optional[int] = None) -> Tuple[np.ndarray, ...]:
    """CutMix box of side ``sqrt(1 - lam)`` times the image size around a uniform centre, clipped.

    ``margin`` (fraction of the box size) keeps the centre away from the border.
    Returns ``(y_low, y_high, x_low, x_high)``.
    """
    img_h, img_w = img_shape[-2:]
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
    margin_y, margin_x = int(margin * cut_h), int(margin * cut_w)
    cy = np.random.randint(margin_y, img_h - margin_y, size=count)
    cx = np.random.randint(margin_x, img_w - margin_x, size=count)
    y_low = np.clip(cy - cut_h // 2, 0, img_h)
    y_high = np.clip(cy + (cut_h + 1) // 2, 0, img_h)
    x_low = np.clip(cx - cut_w // 2, 0, img_w)
    x_high = np.clip(cx + (cut_w + 1) // 2, 0, img_w)
    return y_low, y_high, x_low, x_high


def rand_bbox_minmax(img_shape: Sequence[int], minmax: Sequence[float],
                     count: Optional[int] = None) -> Tuple[np.ndarray, ...]:
    """Box whose height and width are uniform fractions in ``[min, max)`` of the image, placed uniformly."""
    if len(minmax) != 2:
        raise ValueError(f'cutmix minmax must be (min, max) fractions, got {minmax!r}')
    img_h, img_w = img_shape[-2:]
    cut_h = np.random.randint(int(img_h * minmax[0]), int(img_h * minmax[1]), size=count)
    cut_w = np.random.randint(int(img_w * minmax[0]), int(img_w * minmax[1]), size=count)
    y_low = np.random.randint(0, img_h - cut_h + 1, size=count)
    x_low = np.random.randint(0, img_w - cut_w + 1, size=count)
    return y_low, y_low + cut_h, x_low, x_low + cut_w


def cutmix_bbox_and_lam(img_shape: Sequence[int], lam: float, ratio_minmax: Optional[Sequence[float]] = None,
                        correct_lam: bool = True, count: Optional[int] = None) -> Tuple[Tuple, float]:
    """Draw a CutMix box; with ``correct_lam`` (or minmax boxes) lam becomes 1 - box area fraction."""
    if ratio_minmax is not None:
        box = rand_bbox_minmax(img_shape, ratio_minmax, count=count)
    else:
        box = rand_bbox(img_shape, lam, count=count)
    if correct_lam or ratio_minmax is not None:
        y_low, y_high, x_low, x_high = box
        lam = 1.0 - (y_high - y_low) * (x_high - x_low) / float(img_shape[-2] * img_shape[-1])
    return box, lam


def _paste(out: paddle.Tensor, src: paddle.Tensor, box: Box, index: Optional[int] = None) -> None:
    y_low, y_high, x_low, x_high = (int(v) for v in box)
    if y_high <= y_low or x_high <= x_low:
        return
    if index is None:
        out[:, :, y_low:y_high, x_low:x_high] = src[:, :, y_low:y_high, x_low:x_high]
    else:
        out[index, :, y_low:y_high, x_low:x_high] = src[index, :, y_low:y_high, x_low:x_high]


class Mixup:
    """Mixup / CutMix with parameters drawn per batch, per mirrored pair, or per element.

    Args:
        mixup_alpha: Beta(alpha, alpha) for the mixup lambda; mixup is active if > 0.
        cutmix_alpha: Beta(alpha, alpha) for the CutMix lambda; CutMix is active if > 0.
        cutmix_minmax: (min, max) box size fractions; activates CutMix with alpha forced to 1.
        prob: chance of mixing a batch (or a pair / element).
        switch_prob: chance of CutMix instead of mixup when both are active.
        mode: ``'batch'``, ``'pair'`` or ``'elem'``.
        correct_lam: make lam the exact unpasted fraction when a CutMix box is clipped.
        label_smoothing: smoothing of the one-hot targets before mixing.
        num_classes: width of the soft targets.

    ``mixup_enabled`` may be set to False by the training loop to switch mixing off.
    """

    def __init__(self, mixup_alpha: float = 1.0, cutmix_alpha: float = 0.0,
                 cutmix_minmax: Optional[Sequence[float]] = None, prob: float = 1.0, switch_prob: float = 0.5,
                 mode: str = 'batch', correct_lam: bool = True, label_smoothing: float = 0.1,
                 num_classes: int = 1000):
        if mode not in _MODES:
            raise ValueError(f"Mixup mode {mode!r} is unknown; valid: {', '.join(_MODES)}")
        if cutmix_minmax is not None:
            if len(cutmix_minmax) != 2 or not 0.0 <= cutmix_minmax[0] < cutmix_minmax[1] <= 1.0:
                raise ValueError(f'Mixup cutmix_minmax must be (min, max) with 0 <= min < max <= 1, '
                                 f'got {cutmix_minmax!r}')
            cutmix_alpha = 1.0  # box sizes come from minmax; alpha only gates CutMix on
        if mixup_alpha <= 0.0 and cutmix_alpha <= 0.0:
            raise ValueError('Mixup needs mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax')
        for name, value in (('prob', prob), ('switch_prob', switch_prob), ('label_smoothing', label_smoothing)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'Mixup {name} must be in [0, 1], got {value}')
        if num_classes < 1:
            raise ValueError(f'Mixup num_classes must be positive, got {num_classes}')
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.cutmix_minmax = cutmix_minmax
        self.mix_prob = prob
        self.switch_prob = switch_prob
        self.mode = mode
        self.correct_lam = correct_lam
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes
        self.mixup_enabled = True

    # -------------------------------------------------------------- parameter sampling
    def _params_per_elem(self, n: int) -> Tuple[np.ndarray, np.ndarray]:
        lam = np.ones(n, dtype=np.float32)
        use_cutmix = np.zeros(n, dtype=bool)
        if not self.mixup_enabled:
            return lam, use_cutmix
        if self.mixup_alpha > 0.0 and self.cutmix_alpha > 0.0:
            use_cutmix = np.random.rand(n) < self.switch_prob
            lam_cut = np.random.beta(self.cutmix_alpha, self.cutmix_alpha, size=n)
            lam_mix = np.where(use_cutmix, lam_cut, np.random.beta(self.mixup_alpha, self.mixup_alpha, size=n))
        elif self.mixup_alpha > 0.0:
            lam_mix = np.random.beta(self.mixup_alpha, self.mixup_alpha, size=n)
        else:
            use_cutmix = np.ones(n, dtype=bool)
            lam_mix = np.random.beta(self.cutmix_alpha, self.cutmix_alpha, size=n)
        lam = np.where(np.random.rand(n) < self.mix_prob, lam_mix.astype(np.float32), lam)
        return lam, use_cutmix

    def _params_per_batch(self) -> Tuple[float, bool]:
        if not (self.mixup_enabled and np.random.rand() < self.mix_prob):
            return 1.0, False
        use_cutmix = self.cutmix_alpha > 0.0
        if self.mixup_alpha > 0.0 and use_cutmix:
            use_cutmix = bool(np.random.rand() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return float(np.random.beta(alpha, alpha)), use_cutmix

    def _box(self, shape: Sequence[int], lam: float) -> Tuple[Box, float]:
        box, lam = cutmix_bbox_and_lam(shape, lam, ratio_minmax=self.cutmix_minmax, correct_lam=self.correct_lam)
        return tuple(int(v) for v in box), lam

    def sample(self, shape: Sequence[int]) -> Tuple[Lam, Union[None, Box, List[Optional[Box]]]]:
        """Draw (lam, box) for a batch of ``shape`` in this mode: a float and an optional box for
        ``'batch'``, else float32 [N] lambdas and a per-sample list of optional boxes.
        Lambdas of boxed samples are already corrected.
        """
        n = shape[0]
        if self.mode == 'batch':
            lam, use_cutmix = self._params_per_batch()
            if lam == 1.0 or not use_cutmix:
                return lam, None
            box, lam = self._box(shape, lam)
            return lam, box
        half = n // 2 if self.mode == 'pair' else n
        lam, use_cutmix = self._params_per_elem(half)
        boxes: List[Optional[Box]] = [None] * half
        for i in range(half):
            if lam[i] != 1.0 and use_cutmix[i]:
                boxes[i], lam[i] = self._box(shape, float(lam[i]))
        if self.mode == 'pair':  # sample N-1-i mirrors sample i
            lam = np.concatenate((lam, lam[::-1]))
            boxes = boxes + boxes[::-1]
        return lam, boxes

    # -------------------------------------------------------------- application
    def mix_with(self, x: paddle.Tensor, target: paddle.Tensor, lam: Lam,
                 box: Union[None, Box, Sequence[Optional[Box]]] = None) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """Mix with explicit parameters (as returned by :meth:`sample`); returns (x_mixed, soft targets).

        A scalar ``lam`` applies to the whole batch: pixels are blended, or with ``box`` the region
        is pasted from the flipped batch. An [N] ``lam`` applies per sample, with ``box`` None or a
        list of per-sample optional boxes. ``lam`` is used as given for the targets.
        """
        self._check(x, target)
        flipped = x.flip([0])
        if np.ndim(lam) == 0:
            lam = float(lam)
            if box is not None:
                out = x.clone()
                _paste(out, flipped, box)
            elif lam != 1.0:
                out = x * lam + flipped * (1.0 - lam)
            else:
                out = x.clone()
            return out, mixup_target(target, self.num_classes, lam, self.label_smoothing)
        lam = np.asarray(lam, dtype=np.float32).reshape(-1)
        boxes = list(box) if box is not None else [None] * len(lam)
        if len(lam) != x.shape[0] or len(boxes) != x.shape[0]:
            raise ValueError(f'Mixup per-sample lam/box need {x.shape[0]} entries, got {len(lam)}/{len(boxes)}')
        lam_t = paddle.to_tensor(lam, dtype=x.dtype)
        blend = np.array([b is None and v != 1.0 for v, b in zip(lam, boxes)])
        if blend.any():
            w = lam_t.reshape([-1, 1, 1, 1])
            out = paddle.where(paddle.to_tensor(blend).reshape([-1, 1, 1, 1]), x * w + flipped * (1.0 - w), x)
        else:
            out = x.clone()
        for i, b in enumerate(boxes):
            if b is not None:
                _paste(out, flipped, b, index=i)
        return out, mixup_target(target, self.num_classes, lam_t.unsqueeze(1), self.label_smoothing)

    def _check(self, x: paddle.Tensor, target: paddle.Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(f'Mixup expects an NCHW batch, got shape {list(x.shape)}')
        n = x.shape[0]
        if n % 2:
            raise ValueError(f'Mixup needs an even batch size (samples are mixed in mirrored pairs), got {n}')
        if int(np.prod(target.shape)) != n:
            raise ValueError(f'Mixup target shape {list(target.shape)} does not match batch size {n}')
        if n and (int(target.min()) < 0 or int(target.max()) >= self.num_classes):
            raise ValueError(f'Mixup targets must be class indices in [0, {self.num_classes})')

    def __call__(self, x: paddle.Tensor, target: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """Mix an NCHW float batch and int64 [N] labels; returns (x_mixed, float32 [N, num_classes]).

        The input tensor is not modified.
        """
        lam, box = self.sample(x.shape)  # mix_with validates the batch before anything is mixed
        return self.mix_with(x, target, lam, box)
