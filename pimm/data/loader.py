"""Build ``paddle.io.DataLoader`` pipelines for training and (distributed) evaluation."""
import atexit
import numbers
import threading
import time
import weakref
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle

from .constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from .dataset import CORRUPT_TARGET
from .image_io import CorruptImageError, take_worker_error
from .prefetch import DeviceBatchTransform
from .random_erasing import RandomErasing
from .samplers import KeyedBatchSampler, KeyedDistributedBatchSampler, OrderedShardSampler
from .transforms_factory import create_transform
from .worker_init import WorkerInit

__all__ = ['ImageLoader', 'LoaderWorkerError', 'collate_numpy', 'collate_uint8', 'create_loader',
           'set_loader_epoch', 'shared_memory_bytes']

_QUEUE_KILLED = 'Blocking queue is killed'
_WORKER_ERROR_WAIT_S = 1.0


class LoaderWorkerError(RuntimeError):
    """A loader worker process failed for a reason other than a corrupt image (one-line message)."""


def _quiet_corrupt_image_in_reader(args, _default=threading.excepthook) -> None:
    # paddle's reader thread re-raises a worker's CorruptImageError and Python prints its
    # traceback; the loop raises the same error as one line, so that print is only noise
    if args.exc_type is not None and issubclass(args.exc_type, CorruptImageError):
        return
    _default(args)


threading.excepthook = _quiet_corrupt_image_in_reader


# loaders whose persistent workers may still run, closed at exit before multiprocessing terminates the
# workers: otherwise paddle's reader threads see them die and log "workers exit unexpectedly" on a closed stream
_OPEN_LOADERS: 'weakref.WeakSet[ImageLoader]' = weakref.WeakSet()


@atexit.register  # atexit runs last-registered first: before multiprocessing's own exit handler
def _close_open_loaders() -> None:
    for loader in list(_OPEN_LOADERS):
        try:
            loader.close(timeout=1.0)
        except Exception:  # exiting anyway: a loader that cannot shut down cleanly must not block the others
            pass


def _worker_failure() -> Exception:
    # paddle builds the worker's exception in its reader thread just after it stops the queue
    deadline = time.monotonic() + _WORKER_ERROR_WAIT_S
    while time.monotonic() < deadline:
        error = take_worker_error()
        if error is not None:
            return error
        time.sleep(0.01)
    return LoaderWorkerError('a data loader worker process failed; its traceback is printed above')


def _to_tensors(batch):
    if isinstance(batch, np.ndarray):
        return paddle.to_tensor(batch)
    if isinstance(batch, (list, tuple)):
        return [_to_tensors(item) for item in batch]  # paddle's loader also returns lists
    if isinstance(batch, dict):
        return {key: _to_tensors(value) for key, value in batch.items()}
    return batch


class ImageLoader(paddle.io.DataLoader):
    """``paddle.io.DataLoader`` whose data errors surface as one-line exceptions.

    Takes paddle's arguments plus ``batch_transform`` (a :class:`~pimm.data.prefetch.DeviceBatchTransform`
    applied to every batch in this process, on the batch's device; None: batches as collated)
    and ``pin_memory`` (None: paddle's global ``use_pinned_memory()`` setting).

    paddle 3.3 loads in a background thread: with ``num_workers=0`` an exception from the
    dataset kills that thread and the loop waits forever, so this loader then fetches and
    collates in the calling thread instead. With worker processes paddle re-raises a worker's
    exception in the thread and the loop only sees ``SystemError: Blocking queue is killed``;
    this loader raises the worker's :class:`~pimm.data.image_io.CorruptImageError` instead
    (or :class:`LoaderWorkerError`).
    """

    def __init__(self, *args, batch_transform: Optional[DeviceBatchTransform] = None,
                 pin_memory: Optional[bool] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if pin_memory is not None:
            # paddle copies this attribute into each iterator it builds; setting it here keeps the
            # choice per loader instead of flipping the process-wide paddle.io.use_pinned_memory()
            self.pin_memory = bool(pin_memory)
        self.batch_transform = batch_transform
        _OPEN_LOADERS.add(self)

    def close(self, timeout: Optional[float] = None) -> None:
        """Shut the persistent worker processes down now (the next pass starts new ones).

        ``timeout``: seconds to wait for each worker to exit (None: as long as it takes).
        """
        iterator, self._iterator = getattr(self, '_iterator', None), None
        if iterator is not None:  # what paddle's iterator runs when it is garbage collected
            iterator._try_shutdown_all(timeout)

    def set_epoch(self, epoch: int) -> None:
        """Pin the shuffling order, the augmentations and the device random erasing of the next pass to ``epoch``."""
        set_epoch = getattr(self.batch_sampler, 'set_epoch', None)
        if set_epoch is not None:
            set_epoch(epoch)
        if self.batch_transform is not None:
            self.batch_transform.set_epoch(epoch)

    def __iter__(self) -> Iterator:
        if self.batch_transform is None:
            yield from self._collated_batches()
            return
        prepare = self.batch_transform.begin_pass()
        for batch in self._collated_batches():
            batch = prepare(batch)  # drops the uint8 batch, and its shared memory, before the step runs
            yield batch

    def _collated_batches(self) -> Iterator:
        if self.num_workers == 0:
            for indices in self.batch_sampler:
                yield _to_tensors(self.collate_fn([self.dataset[i] for i in indices]))
            return
        before_start = getattr(self.worker_init_fn, 'before_start', None)
        if before_start is not None:
            before_start()
        numpy_state = np.random.get_state()
        try:
            batches = super().__iter__()
        finally:
            # paddle draws its workers' base seed from the global numpy RNG when it starts them: a resumed
            # run (new workers) would otherwise draw once more than an uninterrupted one (persistent workers)
            np.random.set_state(numpy_state)
        take_worker_error()  # drop anything left from an earlier run
        failure = None
        try:
            yield from batches
        except SystemError as e:
            if _QUEUE_KILLED not in str(e):
                raise
            failure = _worker_failure()
        if failure is not None:
            reader = getattr(batches, '_thread', None)
            if reader is not None:
                reader.join(_WORKER_ERROR_WAIT_S)  # let its traceback print before our one-line error
            # release the broken iterator now so its workers shut down here, not at interpreter exit
            del batches
            self._iterator = None
            raise failure.with_traceback(None)


def collate_numpy(batch: Sequence[Tuple[np.ndarray, int]]) -> Tuple[np.ndarray, np.ndarray]:
    """Stack ``(image, target)`` samples into a float32 NCHW batch and an int64 target vector."""
    images, targets = zip(*batch)
    return np.stack(images).astype(np.float32, copy=False), np.asarray(targets, dtype=np.int64)


def collate_uint8(batch: Sequence[Tuple[np.ndarray, int]]) -> Tuple[np.ndarray, np.ndarray]:
    """Stack uint8 CHW ``(image, target)`` samples into a uint8 NCHW batch and an int64 target vector.

    A corrupt image skipped by the dataset (target -1, a float placeholder) becomes zeros. A
    batch without any uint8 image is collated as :func:`collate_numpy` does (float32, taken as
    already normalised); uint8 images mixed with other float images raise ValueError.
    """
    images, targets = zip(*batch)
    targets = np.asarray(targets, dtype=np.int64)
    images = [np.asarray(img) for img in images]
    is_uint8 = [img.dtype == np.uint8 for img in images]
    if not any(is_uint8):
        return collate_numpy(batch)
    shape = next(img.shape for img, u in zip(images, is_uint8) if u)
    out = np.zeros((len(images),) + shape, dtype=np.uint8)
    for i, (img, u, target) in enumerate(zip(images, is_uint8, targets)):
        if img.shape != shape:
            raise ValueError(f'batch images differ in shape: {shape} and {img.shape}')
        if u:
            out[i] = img
        elif target != CORRUPT_TARGET:
            raise ValueError(f'batch mixes uint8 images with {img.dtype} images; use one transform output type')
    return out, targets


def shared_memory_bytes(loader: paddle.io.DataLoader) -> int:
    """Upper bound of the /dev/shm bytes ``loader``'s worker processes hold at once (0 without workers).

    Paddle keeps ``prefetch_factor * num_workers`` batches requested ahead (its
    ``_outstanding_capacity``); a worker puts each finished batch in its own shared-memory
    file, which lives until the batch is released, so the batch the loop holds counts too.
    The batch's images are uint8 with a ``batch_transform`` and float32 otherwise.
    """
    if loader.num_workers == 0:
        return 0
    shape = getattr(getattr(loader.dataset, 'transform', None), 'output_shape', None)
    batch_size = getattr(loader.batch_sampler, 'batch_size', None)
    if shape is None or batch_size is None:
        raise ValueError('shared_memory_bytes needs a loader from create_loader (transform output_shape, batch_size)')
    image_dtype = np.uint8 if getattr(loader, 'batch_transform', None) is not None else np.float32
    per_batch = batch_size * (int(np.prod(shape)) * np.dtype(image_dtype).itemsize + np.dtype(np.int64).itemsize)
    return (loader.prefetch_factor * loader.num_workers + 1) * per_batch  # one device per process


def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return int(value)


def _batch_sampler(dataset, batch_size: int, is_training: bool, distributed: bool, drop_last: bool, seed: int):
    if distributed:
        world_size, rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    else:
        world_size, rank = 1, 0
    if is_training:
        # reshuffled every epoch from the epoch number; call set_loader_epoch to pin it
        sampler = KeyedDistributedBatchSampler(dataset, batch_size, num_replicas=world_size, rank=rank,
                                               shuffle=True, drop_last=drop_last)
    else:
        shard = OrderedShardSampler(len(dataset), num_replicas=world_size, rank=rank)
        sampler = KeyedBatchSampler(sampler=shard, batch_size=batch_size, drop_last=drop_last)
    sampler.set_key(seed, rank)
    return sampler, rank


def create_loader(
        dataset,
        input_size: Union[int, Sequence[int]],
        batch_size: int,
        is_training: bool = False,
        num_workers: int = 1,
        distributed: bool = False,
        crop_pct: Optional[float] = None,
        interpolation: str = 'bilinear',
        mean: Tuple[float, float, float] = IMAGENET_DEFAULT_MEAN,
        std: Tuple[float, float, float] = IMAGENET_DEFAULT_STD,
        re_prob: float = 0.,
        re_mode: str = 'const',
        re_count: int = 1,
        auto_augment: Optional[str] = None,
        color_jitter: Union[float, Sequence[float], None] = 0.4,
        hflip: float = 0.5,
        scale: Tuple[float, float] = (0.08, 1.0),
        ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
        fast_decode: bool = False,
        collate_fn: Optional[Callable[[List], object]] = None,
        drop_last: Optional[bool] = None,
        persistent_workers: bool = True,
        seed: int = 0,
        use_prefetcher: bool = True,
        pin_memory: bool = True,
) -> ImageLoader:
    """A DataLoader (:class:`ImageLoader`) over ``dataset`` with ``dataset.transform`` set by :func:`create_transform`.

    Batches are ``(images float32 [N, 3, H, W], targets int64 [N])``. ``num_workers``
    processes decode in parallel (0: in this process). ``drop_last`` defaults to ``is_training``.

    ``use_prefetcher`` (timm's flag): the workers send uint8 batches (``collate_uint8``) and
    this process normalises them on their device and applies random erasing there
    (:class:`~pimm.data.prefetch.DeviceBatchTransform`); eval batches equal timm's
    ``create_transform`` bit for bit. False: the workers normalise and erase and send float32
    (``collate_numpy``), four times the shared memory (:func:`shared_memory_bytes`).
    ``collate_fn`` replaces the collate function in both cases. ``pin_memory`` turns paddle's
    pinned host staging of this loader's batches on or off (``DATASET.PIN_MEM``).

    Training shuffles with ``paddle.io.DistributedBatchSampler`` (across
    ``paddle.distributed`` ranks when ``distributed``); call :func:`set_loader_epoch` each
    epoch. Evaluation visits samples in order; when ``distributed`` each rank gets a
    contiguous :class:`OrderedShardSampler` shard without padding, so summing per-rank
    results counts every image once, but a rank may get one batch fewer than another.

    A corrupt image raises :class:`~pimm.data.image_io.CorruptImageError` (one line, with the path) from the
    loop, also when it was decoded in a worker, unless the dataset has ``skip_corrupt``.

    Augmentation randomness is a function of (``seed``, rank, epoch, sample index) only: the
    batch samplers yield :class:`~pimm.data.sample_seed.SampleKey` indices and
    :class:`~pimm.data.ImageDataset` reseeds ``random`` and ``numpy`` from them for each
    sample (a dataset of another class must use :func:`~pimm.data.sample_seed.sample_rng`
    itself). Batches are thus the same for any ``num_workers``, persistent or not, and after
    a resume. Device random erasing draws from ``seed``, the rank and the epoch (see
    set_loader_epoch). Worker processes die with this process (see ``worker_init.py``).
    """
    batch_size = _check_int('batch_size', batch_size, 1)
    num_workers = _check_int('num_workers', num_workers, 0)
    seed = _check_int('seed', seed, 0)
    if not hasattr(dataset, '__len__') or not hasattr(dataset, '__getitem__'):
        raise ValueError(f'dataset must support len() and indexing, got {type(dataset).__name__}')
    if len(dataset) == 0:
        raise ValueError('dataset is empty')
    dataset.transform = create_transform(
        input_size, is_training=is_training, interpolation=interpolation, crop_pct=crop_pct, mean=mean, std=std,
        hflip=hflip, scale=tuple(scale), ratio=tuple(ratio), color_jitter=color_jitter, auto_augment=auto_augment,
        re_prob=re_prob, re_mode=re_mode,
        re_count=re_count, fast_decode=fast_decode, use_prefetcher=use_prefetcher)
    drop_last = bool(is_training if drop_last is None else drop_last)
    batch_sampler, rank = _batch_sampler(dataset, batch_size, is_training, distributed, drop_last, seed)
    batch_transform = None
    if use_prefetcher:
        # re_* were checked by create_transform, which leaves erasing to the device in this mode
        erasing = RandomErasing(float(re_prob), mode=re_mode, max_count=int(re_count)) \
            if is_training and re_prob > 0 else None
        batch_transform = DeviceBatchTransform(mean, std, erasing, seed=seed, rank=rank,
                                               zero_skipped=getattr(dataset, 'skip_corrupt', False))
    return ImageLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate_fn or (collate_uint8 if use_prefetcher else collate_numpy),
        worker_init_fn=WorkerInit(seed, rank) if num_workers > 0 else None,
        persistent_workers=bool(persistent_workers) and num_workers > 0,
        return_list=True,
        batch_transform=batch_transform,
        pin_memory=bool(pin_memory),
    )


def set_loader_epoch(loader: paddle.io.DataLoader, epoch: int) -> None:
    """Fix the shuffling order, the augmentations and the device random erasing of ``loader`` for ``epoch``.

    All derive from the epoch number (and seed, rank, sample index) only, so a run resumed at
    epoch e loads exactly the batches an uninterrupted run does at epoch e, with or without
    (persistent) workers. Evaluation loaders have no shuffling to fix.
    """
    epoch = _check_int('epoch', epoch, 0)
    if isinstance(loader, ImageLoader):
        loader.set_epoch(epoch)
        return
    set_epoch = getattr(loader.batch_sampler, 'set_epoch', None)
    if set_epoch is not None:
        set_epoch(epoch)
