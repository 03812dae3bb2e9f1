"""pimm.data: datasets, transforms and loaders."""
from importlib import import_module

from .class_names import imagenet_class_names, imagenet_synsets
from .constants import DEFAULT_CROP_PCT, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from .dataset import IMAGE_EXTENSIONS, DatasetError, ImageDataset
from .image_io import CorruptImageError, load_rgb
from .loader import (ImageLoader, LoaderWorkerError, collate_numpy, collate_uint8, create_loader, set_loader_epoch,
                     shared_memory_bytes)
from .prefetch import DeviceBatchTransform
from .sample_seed import SampleKey, sample_rng
from .samplers import KeyedBatchSampler, KeyedDistributedBatchSampler, OrderedShardSampler
from .transforms_factory import create_transform, resolve_image_size

# augmentations living in their own modules, imported on first use
_LAZY_EXPORTS = {
    'rand_augment_transform': '.auto_augment',
    'RandomErasing': '.random_erasing',
    'Mixup': '.mixup',
}


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        return getattr(import_module(_LAZY_EXPORTS[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
