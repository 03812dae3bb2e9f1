"""ImageNet-style folder dataset: one sub-folder per class, images inside."""
import logging
import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import paddle
from PIL import Image

from .image_io import CorruptImageError, load_rgb

__all__ = ['DatasetError', 'IMAGE_EXTENSIONS', 'ImageDataset']

_logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.ppm', '.tif', '.tiff')
CORRUPT_TARGET = -1
# what a corrupt image is replaced by when the dataset has no transform
_PLACEHOLDER_SIZE = (32, 32)


class DatasetError(Exception):
    """The dataset folder is missing or malformed (one-line message)."""


def _is_image(name: str) -> bool:
    return not name.startswith('.') and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _list_images(class_dir: str) -> List[str]:
    """Image files under ``class_dir`` (recursively, hidden entries skipped), sorted by relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith('.')]
        rel_dir = os.path.relpath(dirpath, class_dir)
        found.extend(os.path.normpath(os.path.join(rel_dir, f)) for f in filenames if _is_image(f))
    return [os.path.join(class_dir, rel) for rel in sorted(found)]


def _class_folders(root: str) -> List[str]:
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith('.'))


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

    A corrupt image raises :class:`~pimm.data.image_io.CorruptImageError`, unless
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
        images = {name: _list_images(os.path.join(root, name)) for name in folders}
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
        try:
            img = load_rgb(path, draft_size=getattr(self.transform, 'draft_size', None))
        except CorruptImageError as e:
            if not self.skip_corrupt:
                raise
            _logger.warning('skipping %s', e)
            return self._corrupt_placeholder(), CORRUPT_TARGET
        return (self.transform(img) if self.transform is not None else img), target

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
