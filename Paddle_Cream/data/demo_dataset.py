"""The quickstart's data: scikit-learn's handwritten digits as an ImageNet-style folder.

1,797 real 8x8 scans of the digits 0-9 (shipped inside scikit-learn, no download),
upscaled to 32x32 RGB PNGs under ``root/train/<digit>/`` and ``root/val/<digit>/``
(every fifth image of each class goes to val).
"""
import os
import shutil
import tempfile

import numpy as np
from PIL import Image

__all__ = ['DEMO_DATASETS', 'ensure_demo_dataset']

DEMO_DATASETS = ('digits',)
IMAGE_SIZE = 32


def _write_digits(root: str, per_class: int = 0) -> None:
    from sklearn.datasets import load_digits
    digits = load_digits()
    counts = {}
    for image, label in zip(digits.images, digits.target):
        index = counts.get(label, 0)
        if per_class and index >= per_class:
            continue
        counts[label] = index + 1
        split = 'val' if index % 5 == 4 else 'train'
        folder = os.path.join(root, split, f'digit_{label}')
        os.makedirs(folder, exist_ok=True)
        gray = (image / 16. * 255).astype(np.uint8)   # sklearn's digits are 0..16 intensities
        img = Image.fromarray(gray).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC).convert('RGB')
        img.save(os.path.join(folder, f'{label}_{index:04d}.png'))


def ensure_demo_dataset(name: str, root: str, log=print, per_class: int = 0) -> str:
    """Write the demo dataset ``name`` to ``root`` unless it is already there; returns ``root``.
    ``per_class`` > 0 keeps only that many images of each class (for tests).

    Written into a temporary folder and renamed, so an interrupted first run leaves nothing half-made.
    """
    if name not in DEMO_DATASETS:
        raise ValueError(f"unknown demo dataset '{name}'; valid: {', '.join(DEMO_DATASETS)}")
    if os.path.isdir(os.path.join(root, 'train')) and os.path.isdir(os.path.join(root, 'val')):
        return root
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.demo_', dir=parent)
    try:
        _write_digits(tmp, per_class)
        if os.path.exists(root) and not os.listdir(root):
            os.rmdir(root)
        os.replace(tmp, root)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    log(f'wrote the {name} demo dataset (scikit-learn handwritten digits, 32x32 RGB) to {root}')
    return root
