"""What the loading process does to each batch on its device: uint8 -> normalised float32, random erasing.

Loader workers ship uint8 CHW batches (a quarter of float32's shared memory, see
``pimm.data.loader.shared_memory_bytes``); :class:`DeviceBatchTransform` then normalises them
where paddle put them, as timm's ``PrefetchLoader`` does, and erases boxes with
:class:`~pimm.data.random_erasing.RandomErasing`'s geometry.

Normalisation is ``(x / 255 - mean) / std`` in float32, one IEEE operation at a time (the
arithmetic of torchvision's ``ToTensor`` + ``Normalize``), so eval batches equal timm's
``create_transform`` output bit for bit.

Erasing randomness belongs to the loader, not to a global generator: each pass over the
loader draws from ``SeedSequence([seed, rank, epoch])``, so a run resumed at epoch e erases
exactly as an uninterrupted run does at epoch e, and ranks differ.
"""
import random
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import paddle

from .random_erasing import RandomErasing

__all__ = ['DeviceBatchTransform', 'erasing_generators', 'normalize_uint8']

_CHANNELS = 3
_IN_FLIGHT = 2   # page-locked noise buffers kept alive while their copies to the GPU may still run


def erasing_generators(seed: int, rank: int, epoch: int) -> Tuple[random.Random, np.random.Generator]:
    """The (box geometry, fill noise) generators for one pass of a loader.

    Geometry comes from a ``random.Random`` so that RandomErasing's own sampling code (the
    same calls as timm's) draws the boxes; noise from a separate numpy stream, so the boxes
    do not depend on the fill mode.
    """
    geometry, noise = np.random.SeedSequence([int(seed), int(rank), int(epoch)]).spawn(2)
    words = geometry.generate_state(4, np.uint32)
    return random.Random(int.from_bytes(words.tobytes(), 'little')), np.random.default_rng(noise)


def normalize_uint8(images: paddle.Tensor, mean: paddle.Tensor, std: paddle.Tensor,
                    scale: paddle.Tensor) -> paddle.Tensor:
    """float32 ``(images / scale - mean) / std`` with tensor operands on the images' device.

    ``scale`` is a float32 tensor holding 255: ``x / 255.0`` with a Python number becomes
    paddle's ``scale`` op (a multiply by 1/255), which rounds differently from torchvision.
    """
    x = paddle.divide(images.astype('float32'), scale)
    return paddle.divide(paddle.subtract(x, mean), std)


class DeviceBatchTransform:
    """``(images, targets, ...)`` batch -> the same batch with images normalised (and erased).

    Args:
        mean, std: per-channel normalisation, as for ``create_transform``.
        erasing: boxes and fill mode for random erasing of the normalised batch (None: off).
        seed, rank: with the epoch, what the erasing generators are derived from.
        zero_skipped: set images whose target is negative (corrupt images skipped by the
            dataset) to 0, as the float pipeline delivers them.

    uint8 images are normalised; float images are taken as already normalised (a dataset
    that ignores its uint8 transform). Call :meth:`begin_pass` once per pass over the
    loader: it returns the function for that pass and moves on to the next epoch, as
    ``paddle.io.DistributedBatchSampler`` does, unless :meth:`set_epoch` is called.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], erasing: Optional[RandomErasing] = None,
                 seed: int = 0, rank: int = 0, zero_skipped: bool = False) -> None:
        if len(mean) != _CHANNELS or len(std) != _CHANNELS:
            raise ValueError(f'mean and std must have {_CHANNELS} values each, got {mean!r} and {std!r}')
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.erasing = erasing
        self._in_flight: list = []
        self.seed, self.rank = int(seed), int(rank)
        self.zero_skipped = bool(zero_skipped)
        self.epoch = 0
        self._constants: Dict[str, Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass erase as epoch ``epoch`` (call before iterating, like set_loader_epoch)."""
        self.epoch = int(epoch)

    def begin_pass(self) -> Callable:
        """The batch function for one pass over the loader, with this epoch's erasing generators."""
        geometry, noise = erasing_generators(self.seed, self.rank, self.epoch)
        self.epoch += 1
        return lambda batch: self._apply(batch, geometry, noise)

    def _constants_on(self, place) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        key = str(place)
        if key not in self._constants:  # a handful of floats, uploaded once per device
            shape = (1, _CHANNELS, 1, 1)
            self._constants[key] = tuple(
                paddle.to_tensor(np.asarray(v, np.float32).reshape(s), place=place)
                for v, s in ((self.mean, shape), (self.std, shape), (255., (1,))))
        return self._constants[key]

    def _apply(self, batch, geometry: random.Random, noise: np.random.Generator):
        if not isinstance(batch, (list, tuple)) or len(batch) < 2 or not isinstance(batch[0], paddle.Tensor):
            raise ValueError(f'a use_prefetcher loader needs (images, targets, ...) batches of tensors, '
                             f'got {type(batch).__name__}')
        images, targets = batch[0], batch[1]
        if images.ndim != 4 or images.shape[1] != _CHANNELS:
            raise ValueError(f'expected images of shape [N, {_CHANNELS}, H, W], got {list(images.shape)}')
        mean, std, scale = self._constants_on(images.place)
        if images.dtype == paddle.uint8:
            images = normalize_uint8(images, mean, std, scale)
            if self.zero_skipped:
                keep = (targets.reshape([-1, 1, 1, 1]) >= 0).expand(images.shape)
                images = paddle.where(keep, images, paddle.zeros_like(images))
        elif images.dtype != paddle.float32:
            raise ValueError(f'expected uint8 or float32 images, got {images.dtype}')
        if self.erasing is not None:
            self._erase(images, geometry, noise)
        return type(batch)([images, *batch[1:]])

    def _erase(self, images: paddle.Tensor, geometry: random.Random, noise: np.random.Generator) -> None:
        # per image and in the same order as RandomErasing on an NCHW array; boxes are written in place
        count, chans, img_h, img_w = images.shape
        splits = self.erasing.num_splits
        boxes = [(i, box) for i in range(count // splits if splits > 1 else 0, count)
                 for box in self.erasing.sample_boxes(img_h, img_w, rng=geometry)]
        if not boxes:
            return
        mode = self.erasing.mode
        if mode == 'const':
            for i, (top, left, h, w) in boxes:
                images[i, :, top:top + h, left:left + w] = 0.
            return
        # the noise of the whole batch drawn on the host (the same values on every device type, from the
        # loader's own stream) and uploaded in ONE copy that does not block (one per box would stall a GPU
        # step per box)
        sizes = [chans * h * w if mode == 'pixel' else chans for _, (_, _, h, w) in boxes]
        flat = self._upload(noise.standard_normal(sum(sizes), dtype=np.float32), images.place)
        start = 0
        for (i, (top, left, h, w)), size in zip(boxes, sizes):
            values = flat[start:start + size]
            start += size
            if mode == 'pixel':
                images[i, :, top:top + h, left:left + w] = values.reshape([chans, h, w])
            else:  # 'rand': one value per channel
                images[i, :, top:top + h, left:left + w] = values.reshape([chans, 1, 1]).expand([chans, h, w])

    def _upload(self, array: np.ndarray, place) -> paddle.Tensor:
        """``array`` on ``place``. To a GPU through page-locked memory and a copy that does not block the host:
        Paddle's streams are blocking, so ``to_tensor`` from pageable memory is a synchronisation per batch.
        The page-locked buffers of the last :data:`_IN_FLIGHT` batches are kept alive until their copies
        have surely run (the iteration's own device-to-host copy waits for them)."""
        if not place.is_gpu_place():
            return paddle.to_tensor(array, place=place)
        pinned = paddle.to_tensor(array, place=paddle.CUDAPinnedPlace())
        self._in_flight = (self._in_flight + [pinned])[-_IN_FLIGHT:]
        return pinned._copy_to(place, False)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(mean={self.mean}, std={self.std}, erasing={self.erasing!r}, '
                f'seed={self.seed}, rank={self.rank})')
