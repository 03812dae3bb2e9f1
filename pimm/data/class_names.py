"""Human-readable class names of the datasets pimm's published weights were trained on."""
from functools import lru_cache
from importlib import resources
from typing import List, Tuple

__all__ = ['imagenet_class_names', 'imagenet_synsets']

IMAGENET_NUM_CLASSES = 1000


@lru_cache(maxsize=None)
def _read_imagenet(file_name: str) -> Tuple[str, ...]:
    text = resources.files(__package__).joinpath('_info', file_name).read_text(encoding='utf-8')
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != IMAGENET_NUM_CLASSES:  # a damaged install, not a user mistake
        raise RuntimeError(f'pimm/data/_info/{file_name} has {len(names)} names, expected {IMAGENET_NUM_CLASSES}')
    return names


def imagenet_class_names() -> List[str]:
    """The 1000 ImageNet-1k class names in class-index order (0 'tench', 207 'golden retriever', ...).

    The first WordNet synonym of each class, as timm's ``ImageNetInfo().index_to_description(i)``
    gives it before its first comma (the data file was generated from timm 1.0 once; timm is not
    needed at run time). Two names occur twice ('crane': 134 the bird, 517 the machine;
    'maillot': 638, 639), as in the usual ImageNet label lists: show the index alongside.
    """
    return list(_read_imagenet('imagenet_class_names.txt'))


def imagenet_synsets() -> List[str]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (0 'n01440764', ...): the names of the class
    folders of the usual ImageNet train/val layout, whose sorted order is the class index. Generated from
    timm 1.0's list once, like the names."""
    return list(_read_imagenet('imagenet_synsets.txt'))
