"""The label of each class index of a network: a retrain checkpoint's class names, the ImageNet-1k
names for a 1000-class network, or the index (``predict`` shows them, ``export`` records them)."""
from typing import List, Optional, Tuple

from pimm.data import imagenet_class_names
from pimm.data.class_names import IMAGENET_NUM_CLASSES
from pimm.utils import CheckpointFileError, load_paddle_file

from .model_builder import TORCH_SUFFIXES

__all__ = ['class_labels']


def _checkpoint_class_names(path: str) -> Optional[List[str]]:
    """``args['class_names']`` of a retrain checkpoint (None for other files)."""
    if path.endswith(TORCH_SUFFIXES):  # the official PyTorch checkpoints hold no class names
        return None
    try:
        checkpoint = load_paddle_file(path)
    except CheckpointFileError:  # already read by load_weights; a plain state dict file has no names anyway
        return None
    args = checkpoint.get('args') if isinstance(checkpoint, dict) else None
    names = args.get('class_names') if isinstance(args, dict) else None
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def class_labels(resume_path: str, num_classes: int) -> Tuple[List[str], str, Optional[str]]:
    """``(label of each class index, their source: 'checkpoint' / 'imagenet' / 'index', a note or None)``."""
    names, note = _checkpoint_class_names(resume_path), None
    if names is not None:
        if len(names) == num_classes:
            return names, 'checkpoint', None
        note = (f'the checkpoint names {len(names)} classes but DATASET.NUM_CLASSES is {num_classes}: '
                f'its class names are not used')
    if num_classes == IMAGENET_NUM_CLASSES:
        return imagenet_class_names(), 'imagenet', note
    return [str(i) for i in range(num_classes)], 'index', note
