"""create_loader with use_prefetcher: uint8 from the workers, normalise and erase on the device, pin_memory."""
import numpy as np
import paddle
import pytest
import timm.data
from PIL import Image

from pimm.data import ImageDataset, collate_numpy, collate_uint8, create_loader, create_transform, set_loader_epoch
from pimm.data.random_erasing import RandomErasing
from pimm.data.transforms import ToNormalizedCHW, ToUint8CHW

# (file name, PIL mode written, width, height): the colour conversions timm's reader goes through
FILES = [('a/rgb.jpg', 'RGB', 300, 225), ('a/gray.jpg', 'L', 131, 197), ('a/cmyk.jpg', 'CMYK', 203, 150),
         ('b/alpha.png', 'RGBA', 157, 155), ('b/palette.png', 'P', 99, 201), ('b/square.bmp', 'RGB', 64, 64)]


def _smooth(width, height, seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 12), max(2, width // 12), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def _write(root, files):
    for i, (name, mode, width, height) in enumerate(files):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        img = _smooth(width, height, i)
        if mode == 'RGBA':
            img = img.convert('RGBA')
            img.putalpha(Image.fromarray(np.linspace(0, 255, width * height).reshape(height, width).astype(np.uint8)))
        else:
            img = img.convert(mode, **(dict(palette=Image.Palette.ADAPTIVE, colors=64) if mode == 'P' else {}))
        img.save(root / name, **(dict(quality=90) if name.endswith('.jpg') else {}))
    return root


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    return _write(tmp_path_factory.mktemp('modes'), FILES)


def _timm_images(paths, input_size, crop_pct, interpolation, **kwargs):
    transform = timm.data.create_transform(input_size, is_training=False, crop_pct=crop_pct,
                                           interpolation=interpolation, **kwargs)

    def load(path):
        with open(path, 'rb') as f:
            return Image.open(f).convert('RGB')
    return np.stack([transform(load(p)).numpy() for p in paths])


def _run(loader):
    images, targets = [], []
    for x, y in loader:
        assert isinstance(x, paddle.Tensor) and x.dtype == paddle.float32 and y.dtype == paddle.int64
        images.append(x.numpy())
        targets.append(y.numpy())
    return np.concatenate(images), np.concatenate(targets)


@pytest.mark.parametrize('input_size, crop_pct, interpolation, workers', [
    (64, 0.875, 'bicubic', 0), (224, 1.0, 'bilinear', 2), ((3, 96, 128), 0.9, 'bicubic', 0),
    ((3, 100, 101), 2.0, 'bilinear', 2),
])
def test_eval_batches_equal_timm_bit_for_bit(image_folder, input_size, crop_pct, interpolation, workers):
    ds = ImageDataset(image_folder)
    loader = create_loader(ds, input_size, batch_size=4, num_workers=workers, crop_pct=crop_pct,
                           interpolation=interpolation)
    assert isinstance(ds.transform.steps[-1], ToUint8CHW) and loader.collate_fn is collate_uint8
    images, targets = _run(loader)
    expected = _timm_images([p for p, _ in ds.samples], input_size, crop_pct, interpolation)
    assert targets.tolist() == ds.targets and images.shape == expected.shape
    assert np.abs(images - expected).max() == 0.0


def test_skip_corrupt_with_workers(tmp_path):
    _write(tmp_path, FILES[:3])
    (tmp_path / 'a' / 'broken.jpg').write_bytes(b'\xff\xd8\xff garbage')
    ds = ImageDataset(tmp_path, skip_corrupt=True)
    images, targets = _run(create_loader(ds, 48, batch_size=2, num_workers=2, interpolation='bicubic'))
    broken = [i for i, (p, _) in enumerate(ds.samples) if p.endswith('broken.jpg')]
    assert targets[broken].tolist() == [-1] and not images[broken].any()
    keep = [i for i in range(len(ds)) if i not in broken]
    expected = _timm_images([ds.samples[i][0] for i in keep], 48, None, 'bicubic')
    np.testing.assert_array_equal(images[keep], expected)


def test_prefetcher_transform_equals_timms_and_drops_normalize_and_erasing(image_folder):
    ds = ImageDataset(image_folder)
    paths = [p for p, _ in ds.samples]
    ours = create_transform(80, crop_pct=0.9, interpolation='bicubic', use_prefetcher=True)
    out = np.stack([ours(Image.open(p).convert('RGB')) for p in paths])
    assert out.dtype == np.uint8 and out.shape == (len(paths), 3, 80, 80)
    np.testing.assert_array_equal(out, _timm_images(paths, 80, 0.9, 'bicubic', use_prefetcher=True))
    train = create_transform(32, is_training=True, re_prob=0.5, use_prefetcher=True)
    assert isinstance(train.steps[-1], ToUint8CHW) and not any(isinstance(s, RandomErasing) for s in train.steps)
    with pytest.raises(ValueError, match='mode'):  # erasing settings are still checked
        create_transform(32, is_training=True, re_prob=0.5, re_mode='noise', use_prefetcher=True)


def test_without_prefetcher_the_workers_normalise_and_erase(image_folder):
    ds = ImageDataset(image_folder)
    loader = create_loader(ds, 32, batch_size=3, is_training=True, num_workers=0, re_prob=1.0,
                           use_prefetcher=False)
    assert loader.batch_transform is None and loader.collate_fn is collate_numpy
    assert isinstance(ds.transform.steps[-2], ToNormalizedCHW) and isinstance(ds.transform.steps[-1], RandomErasing)
    images, _ = _run(loader)
    assert images.shape == (6, 3, 32, 32) and (images == 0).reshape(6, -1).any(axis=1).all()


@pytest.fixture(scope='module')
def square_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('square')
    for i in range(8):
        (root / f'c{i % 2}').mkdir(exist_ok=True)
        _smooth(32, 32, 10 + i).save(root / f'c{i % 2}' / f'{i}.png')
    return root


def _train_loader(folder, re_prob, workers=2):
    # a full-image crop of square images, no flip or jitter: the device erasing is the only randomness
    return create_loader(ImageDataset(folder), 32, batch_size=4, is_training=True, num_workers=workers,
                         scale=(1., 1.), ratio=(1., 1.), hflip=0., color_jitter=None, re_prob=re_prob,
                         re_count=2, seed=11)


def _epoch(loader, epoch):
    set_loader_epoch(loader, epoch)
    return _run(loader)


def test_training_erasing_is_on_the_device_and_resumable(square_folder):
    loader = _train_loader(square_folder, re_prob=0.6)
    first, targets = _epoch(loader, 3)
    again, again_targets = _epoch(loader, 3)
    np.testing.assert_array_equal(first, again)
    assert targets.tolist() == again_targets.tolist()
    resumed, _ = _epoch(_train_loader(square_folder, re_prob=0.6, workers=0), 3)  # a new run started at epoch 3
    np.testing.assert_array_equal(first, resumed)
    clean, clean_targets = _epoch(_train_loader(square_folder, re_prob=0.), 3)
    assert clean_targets.tolist() == targets.tolist()
    erased = first == 0  # const mode writes 0 into the normalised batch
    assert erased.any() and not (clean == 0).any()
    np.testing.assert_array_equal(first[~erased], clean[~erased])
    later, _ = _epoch(loader, 4)
    assert not np.array_equal(first, later)


def test_erasing_stream_uses_the_rank(square_folder, monkeypatch):
    monkeypatch.setattr(paddle.distributed, 'get_world_size', lambda *a, **k: 2)
    monkeypatch.setattr(paddle.distributed, 'get_rank', lambda *a, **k: 1)
    loader = create_loader(ImageDataset(square_folder), 32, batch_size=2, is_training=True, num_workers=0,
                           distributed=True, re_prob=0.5, seed=4)
    assert (loader.batch_transform.seed, loader.batch_transform.rank) == (4, 1)
    assert loader.batch_transform.erasing.probability == 0.5


@pytest.mark.parametrize('pin_memory', [False, True])
def test_pin_memory_reaches_paddles_iterator(square_folder, pin_memory):
    before = paddle.io.reader.use_pinned_memory()
    loader = create_loader(ImageDataset(square_folder), 32, batch_size=4, num_workers=1, pin_memory=pin_memory)
    assert loader.pin_memory is pin_memory
    batches = iter(loader)
    next(batches)
    assert loader._iterator._pin_memory is pin_memory  # what paddle's reader is built with
    assert paddle.io.reader.use_pinned_memory() == before  # nothing global changed
    batches.close()


def test_collate_uint8():
    a, b = np.zeros((3, 2, 2), np.uint8), np.full((3, 2, 2), 7, np.uint8)
    images, targets = collate_uint8([(a, 1), (b, 4)])
    assert images.dtype == np.uint8 and images.shape == (2, 3, 2, 2) and targets.dtype == np.int64
    assert images[1].min() == 7 and targets.tolist() == [1, 4]
    images, _ = collate_uint8([(b, 0), (np.zeros((3, 2, 2), np.float32), -1)])  # a skipped corrupt image
    assert images.dtype == np.uint8 and not images[1].any()
    floats, _ = collate_uint8([(np.ones((3, 2, 2), np.float32), 0)])
    assert floats.dtype == np.float32
    with pytest.raises(ValueError, match='mixes uint8'):
        collate_uint8([(b, 0), (np.ones((3, 2, 2), np.float32), 1)])
    with pytest.raises(ValueError, match='differ in shape'):
        collate_uint8([(b, 0), (np.zeros((3, 2, 3), np.uint8), 1)])
