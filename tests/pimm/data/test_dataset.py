"""pimm.data.ImageDataset and image decoding: folder layout, ordering, errors, corrupt files."""
import os

import numpy as np
import pytest
from PIL import Image

from pimm.data import CorruptImageError, DatasetError, ImageDataset, create_transform, load_rgb


def _write(path, mode='RGB', size=(20, 16), seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    fmt = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.png': 'PNG', '.bmp': 'BMP', '.webp': 'WEBP', '.ppm': 'PPM',
           '.tif': 'TIFF', '.tiff': 'TIFF'}[os.path.splitext(path)[1].lower()]
    img.save(path, format=fmt)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'train'
    _write(str(root / 'zebra' / 'b.JPG'))
    _write(str(root / 'zebra' / 'a.png'), mode='RGBA', size=(9, 30))
    _write(str(root / 'zebra' / 'nested' / 'c.webp'))
    _write(str(root / 'apple' / 'x.jpeg'), mode='L', size=(33, 12))
    _write(str(root / 'apple' / 'y.TIFF'))
    _write(str(root / 'mango' / 'm.bmp'), mode='P')
    _write(str(root / 'mango' / 'n.ppm'))
    _write(str(root / 'mango' / 'o.jpg'), mode='CMYK')
    (root / 'mango' / 'notes.txt').write_text('not an image')
    _write(str(root / 'mango' / '.hidden.jpg'))
    _write(str(root / '.cache' / 'skip.jpg'))
    _write(str(root / 'loose.jpg'))  # files directly under root are not samples
    return root


def test_classes_targets_and_order(folder):
    ds = ImageDataset(folder)
    assert ds.classes == ['apple', 'mango', 'zebra']
    assert ds.class_to_idx == {'apple': 0, 'mango': 1, 'zebra': 2}
    rel = [(os.path.relpath(p, folder), t) for p, t in ds.samples]
    assert rel == [('apple/x.jpeg', 0), ('apple/y.TIFF', 0), ('mango/m.bmp', 1), ('mango/n.ppm', 1),
                   ('mango/o.jpg', 1), ('zebra/a.png', 2), ('zebra/b.JPG', 2), ('zebra/nested/c.webp', 2)]
    assert len(ds) == 8 and ds.targets == [0, 0, 1, 1, 1, 2, 2, 2]
    img, target = ds[0]
    assert isinstance(img, Image.Image) and img.mode == 'RGB' and img.size == (33, 12) and target == 0
    for i in range(len(ds)):
        assert ds[i][0].mode == 'RGB'


def test_transform_is_applied(folder):
    tf = create_transform(24)
    ds = ImageDataset(folder, transform=tf)
    out, target = ds[5]
    assert target == 2 and out.dtype == np.float32 and out.shape == (3, 24, 24)
    np.testing.assert_array_equal(out, tf(load_rgb(ds.samples[5][0])))


def test_explicit_class_to_idx(folder):
    mapping = {'apple': 5, 'mango': 0, 'zebra': 2, 'kiwi': 1}  # kiwi has no folder: allowed (subset)
    ds = ImageDataset(folder, class_to_idx=mapping)
    assert ds.classes == ['mango', 'kiwi', 'zebra', 'apple']
    assert [t for _, t in ds.samples] == [5, 5, 0, 0, 0, 2, 2, 2]
    with pytest.raises(DatasetError, match="'zebra' is not in class_to_idx"):
        ImageDataset(folder, class_to_idx={'apple': 0, 'mango': 1})
    with pytest.raises(DatasetError, match='same index'):
        ImageDataset(folder, class_to_idx={'apple': 0, 'mango': 0, 'zebra': 1})


def _one_line(exc_info):
    text = str(exc_info.value)
    assert text and '\n' not in text
    return text


def test_layout_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        ImageDataset(tmp_path / 'missing')
    assert 'does not exist' in _one_line(e)
    (tmp_path / 'file.txt').write_text('x')
    with pytest.raises(DatasetError) as e:
        ImageDataset(tmp_path / 'file.txt')
    assert 'not a directory' in _one_line(e)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(DatasetError) as e:
        ImageDataset(empty)
    assert 'no class folders' in _one_line(e)
    (empty / 'cat').mkdir()
    (empty / 'dog').mkdir()
    (empty / 'dog' / 'readme.txt').write_text('x')
    with pytest.raises(DatasetError) as e:
        ImageDataset(empty)
    assert 'no images found' in _one_line(e)
    _write(str(empty / 'dog' / 'd.jpg'))
    with pytest.raises(DatasetError) as e:
        ImageDataset(empty)
    assert "class folder 'cat' has no images" in _one_line(e)


@pytest.fixture
def corrupt_folder(tmp_path):
    root = tmp_path / 'val'
    _write(str(root / 'a' / 'good.jpg'), size=(40, 30))
    good = (root / 'a' / 'good.jpg').read_bytes()
    (root / 'a' / 'truncated.jpg').write_bytes(good[:len(good) // 2])
    (root / 'b' / 'garbage.png').parent.mkdir()
    (root / 'b' / 'garbage.png').write_bytes(b'\x89PNG not really\n a png')
    _write(str(root / 'b' / 'fine.png'))
    return root


def test_corrupt_images_raise_with_path(corrupt_folder):
    ds = ImageDataset(corrupt_folder)
    names = [os.path.basename(p) for p, _ in ds.samples]
    assert names == ['good.jpg', 'truncated.jpg', 'fine.png', 'garbage.png']
    for index in (1, 3):
        with pytest.raises(CorruptImageError) as e:
            ds[index]
        assert ds.samples[index][0] in _one_line(e) and e.value.path == ds.samples[index][0]
    with pytest.raises(FileNotFoundError):
        load_rgb(corrupt_folder / 'a' / 'nope.jpg')


def test_skip_corrupt_yields_zero_image_and_minus_one(corrupt_folder):
    tf = create_transform(16)
    ds = ImageDataset(corrupt_folder, transform=tf, skip_corrupt=True)
    results = [ds[i] for i in range(len(ds))]
    assert [t for _, t in results] == [0, -1, 1, -1]
    for img, target in results:
        assert img.shape == (3, 16, 16) and img.dtype == np.float32
        assert (not img.any()) == (target == -1)
    raw = ImageDataset(corrupt_folder, skip_corrupt=True)
    img, target = raw[1]
    assert target == -1 and isinstance(img, Image.Image)


def test_draft_decoding_is_opt_in(tmp_path):
    path = str(tmp_path / 'big.jpg')
    _write(path, size=(400, 300))
    assert load_rgb(path).size == (400, 300)
    assert load_rgb(path, draft_size=(90, 90)).size == (200, 150)  # scale 2 keeps both sides >= 90
    assert load_rgb(path, draft_size=(50, 37)).size == (50, 38)  # scale 8, rounded up
    assert load_rgb(path, draft_size=(500, 500)).size == (400, 300)  # never below the request


def test_dataset_uses_transform_draft_size(tmp_path):
    _write(str(tmp_path / 'c' / 'big.jpg'), size=(400, 300))
    fast = create_transform(32, fast_decode=True)
    seen = []

    class Recorder:
        draft_size = fast.draft_size

        def __call__(self, img):
            seen.append(img.size)
            return fast(img)

    ImageDataset(tmp_path, transform=Recorder())[0]
    assert seen == [(50, 38)]  # min(400 // 36, 300 // 36) = 8: drafted by 8, both sides still >= 36
