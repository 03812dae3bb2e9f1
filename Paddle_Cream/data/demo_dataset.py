"""The quickstart's data: scikit-learn's handwritten digits as an ImageNet-style folder.

1,797 real 8x8 scans of the digits 0-9 (shipped inside scikit-learn, no download),
upscaled to 32x32 RGB PNGs under ``root/train/<digit>/`` and ``root/val/<digit>/``
(every fifth image of each class goes to val).

The folder is written under a temporary name beside ``root`` and renamed into place with
a ``.demo_complete`` record of what it holds written last, so an interrupted or failed
write (a full disk) never leaves a ``root`` that passes for a complete dataset.
"""
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, List

import numpy as np
from PIL import Image

from pimm.data import DatasetError

__all__ = ['DEMO_DATASETS', 'MARKER', 'demo_dataset_problem', 'ensure_demo_dataset']

DEMO_DATASETS = ('digits',)
IMAGE_SIZE = 32
SPLITS = ('train', 'val')
MARKER = '.demo_complete'  # JSON: dataset name and the image count of every class folder
_PARTIAL = '.partial-'     # temporary folders: '.<root name>.partial-<pid>-<random>'


def _write_digits(root: str, per_class: int = 0) -> Dict[str, int]:
    """Write the PNGs under ``root``; returns the number of images of each ``split/class`` folder."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    counts, written = {}, {}
    for image, label in zip(digits.images, digits.target):
        index = counts.get(label, 0)
        if per_class and index >= per_class:
            continue
        counts[label] = index + 1
        split = 'val' if index % 5 == 4 else 'train'
        rel = f'{split}/digit_{label}'
        os.makedirs(os.path.join(root, rel), exist_ok=True)
        gray = (image / 16. * 255).astype(np.uint8)   # sklearn's digits are 0..16 intensities
        img = Image.fromarray(gray).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC).convert('RGB')
        img.save(os.path.join(root, rel, f'{label}_{index:04d}.png'))
        written[rel] = written.get(rel, 0) + 1
    return written


def _is_image_file(entry: os.DirEntry) -> bool:
    try:
        return not entry.name.startswith('.') and entry.is_file() and entry.stat().st_size > 0
    except OSError:  # a dangling link or a link loop is not one; the dataset reader names it
        return False


def _image_count(folder: str) -> int:
    """Non-empty files in ``folder`` (0 when it is missing)."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if _is_image_file(e))
    except OSError:
        return 0


def _read_marker(root: str):
    try:
        with open(os.path.join(root, MARKER)) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise DatasetError(f'{os.path.join(root, MARKER)}: unreadable record of the demo dataset ({e})') from None
    if not isinstance(record, dict) or not isinstance(record.get('folders'), dict):
        raise DatasetError(f'{os.path.join(root, MARKER)}: not a record of the demo dataset')
    return record


def demo_dataset_problem(name: str, root: str):
    """None when ``root`` holds a complete demo dataset ``name``, else what is wrong with it (one line).

    A folder without the record (written before it existed, or by hand) counts as complete
    when it has both ``train/`` and ``val/``, as it did before.
    """
    if not os.path.isdir(root):
        return f'{root} is not a folder'
    record = _read_marker(root)
    if record is None:
        missing = [f'{s}/' for s in SPLITS if not os.path.isdir(os.path.join(root, s))]
        return f'no {" or ".join(missing)} in it' if missing else None
    if record.get('name') != name:
        return f"it holds the {record.get('name')!r} demo dataset, not {name!r}"
    short: List[str] = []
    for rel, count in sorted(record['folders'].items()):
        have = _image_count(os.path.join(root, rel))
        if have < int(count):
            short.append(f'{rel}/ has {have} of {count} images')
    if short:
        return short[0] + (f' (and {len(short) - 1} other folders are short)' if len(short) > 1 else '')
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: someone else's live process
        return True
    return True


def _remove_stale_partials(root: str) -> None:
    """Delete temporary folders left by writers that were killed (their pid is gone)."""
    parent, prefix = os.path.dirname(os.path.abspath(root)), f'.{os.path.basename(os.path.abspath(root))}{_PARTIAL}'
    try:
        names = [n for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return
    for n in names:
        pid = n[len(prefix):].split('-', 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(os.path.join(parent, n), ignore_errors=True)


def _write_atomically(name: str, root: str, per_class: int) -> None:
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(os.path.abspath(root))}{_PARTIAL}{os.getpid()}-',
                           dir=parent)
    try:
        folders = _write_digits(tmp, per_class)
        with open(os.path.join(tmp, MARKER), 'w') as f:  # last: only a finished folder has it
            json.dump({'name': name, 'per_class': per_class, 'folders': folders}, f, sort_keys=True)
        if os.path.isdir(root) and not os.listdir(root):
            os.rmdir(root)
        try:
            os.replace(tmp, root)
        except OSError:
            if demo_dataset_problem(name, root) is not None:  # not another writer that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_demo_dataset(name: str, root: str, log: Callable[[str], None] = print, per_class: int = 0) -> str:
    """Write the demo dataset ``name`` to ``root`` unless it is already there; returns ``root``.
    ``per_class`` > 0 keeps only that many images of each class (for tests).

    ``root`` must be missing, an empty folder or a complete demo dataset: anything else (a
    half-copied folder, another dataset) raises :class:`~pimm.data.DatasetError` saying what
    is missing, as does a failed write (nothing of it is kept).
    """
    if name not in DEMO_DATASETS:
        raise ValueError(f"unknown demo dataset '{name}'; valid: {', '.join(DEMO_DATASETS)}")
    root = os.fspath(root)
    _remove_stale_partials(root)
    if os.path.lexists(root) and not (os.path.isdir(root) and not os.listdir(root)):
        problem = demo_dataset_problem(name, root)
        if problem is None:
            return root
        raise DatasetError(f"{root}: not a complete '{name}' demo dataset ({problem}); delete it (the demo is "
                           f"then written again) or set DATA_DIR to a new folder")
    try:
        _write_atomically(name, root, per_class)
    except OSError as e:
        where = f' at {e.filename}' if e.filename else ''
        raise DatasetError(f"{root}: could not write the '{name}' demo dataset ({e.strerror or e}{where}); "
                           f"nothing was kept") from None
    log(f'wrote the {name} demo dataset (scikit-learn handwritten digits, 32x32 RGB) to {root}')
    return root
