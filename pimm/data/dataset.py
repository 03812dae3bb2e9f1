"""ImageNet-style folder dataset: one sub-folder per class, images inside."""
import logging
import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import paddle
from PIL import Image

from .image_io import CorruptImageError, load_rgb, unreadable_reason
from .sample_seed import sample_rng

__all__ = ['CORRUPT_TARGET', 'DatasetError', 'IMAGE_EXTENSIONS', 'ImageDataset', 'list_images']

_logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.ppm', '.tif', '.tiff')
CORRUPT_TARGET = -1
# what a corrupt image is replaced by when the dataset has no transform
_PLACEHOLDER_SIZE = (32, 32)


class DatasetError(Exception):
    """The dataset folder is missing or malformed (one-line message)."""


def _is_image(name: str) -> bool:
    return not name.startswith('.') and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _scan(folder: str) -> List[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as e:
        raise DatasetError(f'{folder}: cannot list folder ({unreadable_reason(folder, e)})') from None


def _folder_id(path: str) -> Tuple[int, int]:
    try:
        info = os.stat(path)
    except OSError as e:
        raise DatasetError(f'{path}: cannot read folder ({unreadable_reason(path, e)})') from None
    return info.st_dev, info.st_ino


def _enclosing_ids(folder: str) -> Tuple[Tuple[int, int], ...]:
    """(device, inode) of ``folder`` and of every folder above it: where a symlink loop would lead."""
    ids, path = [], os.path.realpath(folder)
    while True:
        ids.append(_folder_id(path))
        parent = os.path.dirname(path)
        if parent == path:
            return tuple(ids)
        path = parent


def _kind(entry: os.DirEntry) -> str:
    """'dir', 'file' (regular, maybe through a symlink), 'broken' (a symlink that does not resolve) or 'other'."""
    try:
        if entry.is_dir():
            return 'dir'
        if entry.is_file():
            return 'file'
        os.stat(entry.path)  # resolves: a FIFO, socket or device (or a symlink to one)
        return 'other'
    except OSError:  # dangling, a loop, or gone
        return 'broken' if entry.is_symlink() else 'other'


def list_images(class_dir: str) -> Tuple[List[str], List[str]]:
    """(image paths under ``class_dir`` sorted by relative path, ignored non-regular entries named like images).

    Recursive, hidden entries skipped, symlinked folders followed (as timm's ``os.walk(followlinks=True)``);
    a symlink to ``class_dir`` itself or any folder above it would loop forever and raises DatasetError.
    A symlink named like an image that does not resolve is kept: loading it raises CorruptImageError.
    """
    found, ignored = [], []
    pending = [(class_dir, _enclosing_ids(class_dir))]
    while pending:
        folder, enclosing = pending.pop()
        for entry in _scan(folder):
            if entry.name.startswith('.'):
                continue
            kind = _kind(entry)
            if kind == 'dir':
                ident = _folder_id(entry.path)
                if ident in enclosing:
                    raise DatasetError(f'{entry.path}: symbolic link to a folder that contains it '
                                       f'(a loop); remove it')
                pending.append((entry.path, enclosing + (ident,)))
            elif _is_image(entry.name):
                (found if kind in ('file', 'broken') else ignored).append(entry.path)
    found.sort(key=lambda path: os.path.relpath(path, class_dir))
    return found, ignored


def _class_folders(root: str) -> List[str]:
    return sorted(e.name for e in _scan(root) if not e.name.startswith('.') and _kind(e) == 'dir')


def _checked_mapping(class_to_idx: Mapping[str, int], folders: List[str], root: str) -> Dict[str, int]:
    mapping = dict(class_to_idx)
    if any(not isinstance(i, (int, np.integer)) or isinstance(i, bool) or i < 0 for i in mapping.values()):
        raise DatasetError('class_to_idx values must be non-negative integers')
    if len(set(mapping.values())) != len(mapping):
        raise DatasetError('class_to_idx maps two classes to the same index')
    unknown = [f for f in folders if f not in mapping]
    if unknown:
        raise DatasetError(f'{root}: class folder {unknown[0]!r} is not in class_to_idx')
    return {name: int(i) for name, i in mapping.items()}


class ImageDataset(paddle.io.Dataset):
    """Images under ``root/<class>/...`` with targets from the sorted class-folder order.

    Class folders are the non-hidden sub-directories of ``root``; class index is their sorted
    position unless ``class_to_idx`` is given (then every folder must be one of its keys and
    keys without a folder are allowed, for evaluating on a subset). Image files (extensions
    in ``IMAGE_EXTENSIONS``, any case) are found recursively in each class folder and sorted,
    so ``samples`` (a list of ``(path, class_idx)``) is deterministic.

    ``dataset[i]`` is ``(transform(rgb_image), class_idx)``, or the PIL image when
    ``transform`` is None. A transform with a ``draft_size`` attribute (see
    ``create_transform(fast_decode=True)``) gets approximate, faster JPEG decoding.

    Only regular files (or symlinks to them) are images: a FIFO or device named like one
    is ignored with a warning. Symlinked sub-folders are followed; one that loops back to
    a folder above it raises :class:`DatasetError`, as does a folder that cannot be listed.

    An image that cannot be read (permission denied, a dangling symlink) or decoded raises
    :class:`~pimm.data.image_io.CorruptImageError` naming the file, unless
    ``skip_corrupt=True``: then the sample is an all-zero image of the transform's output
    shape (``transform.output_shape`` when present) with target ``-1``, so an evaluation
    loop can leave it out and count it (mask ``target >= 0``). Meant for evaluation: a -1
    target is not a valid training label.
    """

    def __init__(self, root: Union[str, os.PathLike], transform: Optional[Callable] = None,
                 class_to_idx: Optional[Mapping[str, int]] = None, skip_corrupt: bool = False) -> None:
        super().__init__()
        root = os.fspath(root)
        if not os.path.exists(root):
            raise DatasetError(f'{root}: dataset folder does not exist')
        if not os.path.isdir(root):
            raise DatasetError(f'{root}: dataset root is not a directory')
        folders = _class_folders(root)
        if not folders:
            raise DatasetError(f'{root}: no class folders (expected one sub-folder of images per class)')
        if class_to_idx is None:
            class_to_idx = {name: i for i, name in enumerate(folders)}
        else:
            class_to_idx = _checked_mapping(class_to_idx, folders, root)
        images, ignored = {}, []
        for name in folders:
            images[name], skipped = list_images(os.path.join(root, name))
            ignored.extend(skipped)
        if ignored:  # e.g. a FIFO named x.png: opening it would wait forever for a writer
            _logger.warning('%s: ignored %d %s named like images but not regular files (first: %s)', root,
                            len(ignored), 'entry' if len(ignored) == 1 else 'entries', ignored[0])
        if not any(images.values()):
            raise DatasetError(f'{root}: no images found (extensions: {" ".join(IMAGE_EXTENSIONS)})')
        empty = [name for name in folders if not images[name]]
        if empty:
            raise DatasetError(f'{root}: class folder {empty[0]!r} has no images'
                               + (f' (nor do {len(empty) - 1} other classes)' if len(empty) > 1 else ''))
        self.root = root
        self.class_to_idx: Dict[str, int] = class_to_idx
        self.classes: List[str] = sorted(class_to_idx, key=class_to_idx.__getitem__)
        self.samples: List[Tuple[str, int]] = [(path, class_to_idx[name]) for name in folders
                                               for path in images[name]]
        self.transform = transform
        self.skip_corrupt = bool(skip_corrupt)

    @property
    def targets(self) -> List[int]:
        """The class index of every sample, in sample order."""
        return [target for _, target in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        # the create_loader samplers give SampleKey indices: the augmentation draws of this sample
        # then depend on (seed, rank, epoch, index) only, not on the worker that loads it
        with sample_rng(index):
            try:
                img = self._load(path)
            except CorruptImageError as e:
                if not self.skip_corrupt:
                    raise
                _logger.warning('skipping %s', e)
                return self._corrupt_placeholder(), CORRUPT_TARGET
            return (self.transform(img) if self.transform is not None else img), target

    def _load(self, path: str) -> Image.Image:
        try:
            return load_rgb(path, draft_size=getattr(self.transform, 'draft_size', None))
        except OSError as e:  # not readable (permission, dangling link...): as unusable as undecodable
            raise CorruptImageError(path, unreadable_reason(path, e)) from None

    def _corrupt_placeholder(self):
        shape = getattr(self.transform, 'output_shape', None)
        if shape is not None:
            return np.zeros(shape, dtype=np.float32)
        black = Image.new('RGB', _PLACEHOLDER_SIZE)
        if self.transform is None:
            return black
        out = self.transform(black)
        return np.zeros_like(out) if isinstance(out, np.ndarray) else out

    def __repr__(self) -> str:
        return f'{type(self).__name__}(root={self.root!r}, classes={len(self.classes)}, samples={len(self)})'
