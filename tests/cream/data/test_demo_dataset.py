"""Paddle_Cream's digits demo folder (DATASET.DEMO): written atomically, never taken for complete when it
is not, and every problem one DatasetError line."""
import errno
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from Paddle_Cream.data import demo_dataset
from Paddle_Cream.data.demo_dataset import MARKER, ensure_demo_dataset
from pimm.data import DatasetError, ImageDataset

quiet = dict(log=lambda _: None, per_class=6)


def _one_line(info, root):
    text = str(info.value)
    assert '\n' not in text and str(root) in text
    return text


def test_written_once_then_reused(tmp_path):
    root = tmp_path / 'digits'
    lines = []
    ensure_demo_dataset('digits', str(root), log=lines.append, per_class=6)
    assert len(lines) == 1 and 'wrote the digits demo dataset' in lines[0]
    assert sorted(os.listdir(tmp_path)) == ['digits']  # no temporary folder left
    record = json.loads((root / MARKER).read_text())
    assert record['name'] == 'digits' and sum(record['folders'].values()) == 60
    assert len(ImageDataset(root / 'train')) == 50 and len(ImageDataset(root / 'val')) == 10
    ensure_demo_dataset('digits', str(root), log=lines.append)  # complete: not written again (any per_class)
    assert len(lines) == 1


def test_empty_folder_is_filled(tmp_path):
    (tmp_path / 'digits').mkdir()
    ensure_demo_dataset('digits', str(tmp_path / 'digits'), **quiet)
    assert (tmp_path / 'digits' / MARKER).is_file()


def test_only_train_is_refused_naming_val(tmp_path):
    root = tmp_path / 'digits'
    (root / 'train' / 'digit_0').mkdir(parents=True)
    Image.new('RGB', (4, 4)).save(root / 'train' / 'digit_0' / 'a.png')
    with pytest.raises(DatasetError) as info:
        ensure_demo_dataset('digits', str(root), **quiet)
    assert 'no val/' in _one_line(info, root)
    assert os.listdir(root) == ['train']  # nothing was added to someone else's folder


def test_folder_with_missing_images_is_refused(tmp_path):
    root = tmp_path / 'digits'
    ensure_demo_dataset('digits', str(root), **quiet)
    victim = next((root / 'val' / 'digit_3').iterdir())
    victim.unlink()
    with pytest.raises(DatasetError) as info:
        ensure_demo_dataset('digits', str(root), **quiet)
    assert 'val/digit_3/ has 0 of 1 images' in _one_line(info, root)


def test_legacy_folder_without_record_is_accepted(tmp_path):
    """Folders written before the record existed were renamed into place whole: complete."""
    root = tmp_path / 'digits'
    for split in ('train', 'val'):
        (root / split / 'digit_0').mkdir(parents=True)
    ensure_demo_dataset('digits', str(root), **quiet)
    assert not (root / MARKER).exists()


def _failing_save(after):
    saved = []
    real = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if len(saved) >= after:
            raise OSError(errno.ENOSPC, 'No space left on device', str(fp))
        saved.append(fp)
        return real(self, fp, *args, **kwargs)
    return save


def test_full_disk_is_one_line_and_keeps_nothing(tmp_path, monkeypatch):
    root = tmp_path / 'digits'
    monkeypatch.setattr(Image.Image, 'save', _failing_save(after=17))
    with pytest.raises(DatasetError) as info:
        ensure_demo_dataset('digits', str(root), **quiet)
    assert 'No space left on device' in _one_line(info, root)
    assert os.listdir(tmp_path) == []  # no half-written folder, under any name
    monkeypatch.undo()
    ensure_demo_dataset('digits', str(root), **quiet)  # the next run writes it whole
    assert len(ImageDataset(root / 'train')) == 50


def test_interrupted_write_keeps_nothing(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(demo_dataset.json, 'dump', interrupt)  # after the images, before the record
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_dataset('digits', str(tmp_path / 'digits'), **quiet)
    assert os.listdir(tmp_path) == []


def test_folder_of_a_killed_writer_is_removed_and_not_taken_for_data(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    stale = tmp_path / f'.digits.partial-{int(dead.stdout)}-abc'
    (stale / 'train' / 'digit_0').mkdir(parents=True)
    live = tmp_path / f'.digits.partial-{os.getpid()}-xyz'  # a writer still at work: left alone
    live.mkdir()
    ensure_demo_dataset('digits', str(tmp_path / 'digits'), **quiet)
    assert sorted(os.listdir(tmp_path)) == [live.name, 'digits']


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / 'digits').write_text('x')
    with pytest.raises(DatasetError) as info:
        ensure_demo_dataset('digits', str(tmp_path / 'digits'), **quiet)
    assert 'not a folder' in _one_line(info, tmp_path / 'digits')
