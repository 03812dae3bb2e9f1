"""ImageDataset on awkward file-system entries: FIFOs, symlinks (dangling, loops, folders), permissions.

Each must be either not an image (a FIFO) or one clear error naming the file: DatasetError
when the folder is listed, CorruptImageError when the image is loaded (skipped with
``skip_corrupt``). Nothing may hang or end in a raw OSError.
"""
import builtins
import errno
import os
import signal

import numpy as np
import pytest
from PIL import Image

from pimm.data import CorruptImageError, DatasetError, ImageDataset, create_loader, create_transform, load_rgb

needs_posix = pytest.mark.skipif(not hasattr(os, 'mkfifo') or not hasattr(signal, 'setitimer'),
                                 reason='FIFOs and interval timers are POSIX-only')


def _png(path, value=100):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new('RGB', (12, 10), (value, 20, 30)).save(path)


@pytest.fixture
def root(tmp_path):
    base = tmp_path / 'data'
    _png(str(base / 'a' / 'one.png'))
    _png(str(base / 'b' / 'two.png'))
    return base


@pytest.fixture
def deadline():
    """Fail (instead of hanging the suite) when the test body blocks for more than 5 s."""
    def on_alarm(signum, frame):
        raise TimeoutError('blocked for 5 s (opening a FIFO waits for a writer)')
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _one_line(info, path):
    text = str(info.value)
    assert '\n' not in text and str(path) in text
    return text


@needs_posix
def test_fifo_named_like_an_image_is_not_a_sample(root, deadline, caplog):
    os.mkfifo(root / 'a' / 'pipe.png')
    ds = ImageDataset(root)
    assert [os.path.basename(p) for p, _ in ds.samples] == ['one.png', 'two.png']
    assert 'pipe.png' in caplog.text and 'not regular files' in caplog.text
    for i in range(len(ds)):
        ds[i]


@needs_posix
def test_load_rgb_refuses_a_fifo_without_blocking(tmp_path, deadline):
    os.mkfifo(tmp_path / 'late.png')  # e.g. swapped in after the dataset was listed
    with pytest.raises(CorruptImageError, match='not a regular file') as info:
        load_rgb(tmp_path / 'late.png')
    _one_line(info, tmp_path / 'late.png')


def test_symlink_to_an_image_is_a_sample(root, tmp_path):
    _png(str(tmp_path / 'elsewhere' / 'real.png'), value=200)
    os.symlink(tmp_path / 'elsewhere' / 'real.png', root / 'b' / 'linked.png')
    ds = ImageDataset(root)
    assert [os.path.basename(p) for p, _ in ds.samples] == ['one.png', 'linked.png', 'two.png']
    assert ds[1][0].getpixel((0, 0)) == (200, 20, 30)


@pytest.mark.parametrize('kind, reason', [('dangling', 'dangling symbolic link'), ('loop', 'symbolic link loop')])
def test_broken_symlink_image_is_one_error_or_skipped(root, kind, reason):
    link = root / 'b' / 'broken.png'
    os.symlink('nowhere.png' if kind == 'dangling' else 'broken.png', link)
    ds = ImageDataset(root)
    index = [p for p, _ in ds.samples].index(str(link))
    with pytest.raises(CorruptImageError, match=reason) as info:
        ds[index]
    _one_line(info, link)
    skipping = ImageDataset(root, transform=create_transform(8), skip_corrupt=True)
    img, target = skipping[index]
    assert target == -1 and not img.any()


@pytest.mark.parametrize('target', ['..', '.', '../../..'], ids=['parent', 'itself', 'above_root'])
def test_self_referencing_class_folder_is_a_dataset_error(root, target):
    os.symlink(target, root / 'a' / 'again')
    with pytest.raises(DatasetError, match='loop') as info:
        ImageDataset(root)
    _one_line(info, root / 'a' / 'again')


def test_symlinked_sub_folder_is_followed(root, tmp_path):
    _png(str(tmp_path / 'shared' / 'x.png'))
    _png(str(tmp_path / 'shared' / 'deeper' / 'y.png'))
    os.symlink(tmp_path / 'shared', root / 'a' / 'more')
    ds = ImageDataset(root)
    assert [os.path.relpath(p, root) for p, _ in ds.samples] == [
        'a/more/deeper/y.png', 'a/more/x.png', 'a/one.png', 'b/two.png']


def _deny(monkeypatch, denied):
    """Opening ``denied`` fails with EACCES, by any route (chmod 000 means nothing to root)."""
    real_os_open, real_open = os.open, builtins.open

    def os_open(path, *args, **kwargs):
        if os.fspath(path) == str(denied):
            raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(path))
        return real_os_open(path, *args, **kwargs)

    def any_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(denied):
            raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(file))
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(os, 'open', os_open)
    monkeypatch.setattr(builtins, 'open', any_open)


def test_unreadable_image_is_one_error_or_skipped(root, monkeypatch):
    denied = root / 'b' / 'two.png'
    _deny(monkeypatch, denied)
    with pytest.raises(CorruptImageError, match='permission denied') as info:
        ImageDataset(root)[1]
    _one_line(info, denied)
    img, target = ImageDataset(root, transform=create_transform(8), skip_corrupt=True)[1]
    assert target == -1 and img.shape == (3, 8, 8) and not img.any()


@pytest.mark.skipif(not hasattr(os, 'geteuid') or os.geteuid() == 0,
                    reason='root reads chmod-000 files anyway (the monkeypatched test covers it)')
def test_chmod_000_image_is_one_error(root):
    denied = root / 'b' / 'two.png'
    denied.chmod(0)
    try:
        with pytest.raises(CorruptImageError, match='permission denied'):
            ImageDataset(root)[1]
    finally:
        denied.chmod(0o644)


def test_unlistable_folder_is_a_dataset_error(root, monkeypatch):
    _png(str(root / 'a' / 'sub' / 'deep.png'))
    real_scandir = os.scandir

    def scandir(path='.'):
        if os.fspath(path) == str(root / 'a' / 'sub'):
            raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(path))
        return real_scandir(path)
    monkeypatch.setattr(os, 'scandir', scandir)
    with pytest.raises(DatasetError, match='cannot list folder') as info:
        ImageDataset(root)
    _one_line(info, root / 'a' / 'sub')


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')  # paddle's reader thread
def test_broken_images_through_worker_processes(root):
    os.symlink('nowhere.png', root / 'b' / 'broken.png')
    skipping = create_loader(ImageDataset(root, skip_corrupt=True), 8, batch_size=4, num_workers=1,
                             persistent_workers=False)
    (x, y), = list(skipping)
    assert y.numpy().tolist() == [0, -1, 1] and not np.asarray(x.numpy()[1]).any()
    strict = create_loader(ImageDataset(root), 8, batch_size=1, num_workers=1, persistent_workers=False)
    with pytest.raises(CorruptImageError, match='dangling symbolic link') as info:
        list(strict)
    assert info.value.path == str(root / 'b' / 'broken.png') and '\n' not in str(info.value)
