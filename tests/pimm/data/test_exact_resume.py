"""Augmentations depend on (seed, rank, epoch, sample index) only: the same batches with any
number of workers, persistent or not, on a fresh loader (as after a resume) or one that already
ran other epochs."""
import random

import numpy as np
import paddle
import pytest
from PIL import Image

from pimm.data import ImageDataset, SampleKey, create_loader, create_transform, sample_rng, set_loader_epoch

# every random step of the training pipeline: crop, flip, RandAugment, colour jitter, erasing (on the device)
AUGMENT = dict(auto_augment='rand-m9-mstd0.5-inc1', color_jitter=0.4, re_prob=0.5, re_mode='pixel',
               interpolation='random')


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f'c{c}').mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (28, 36, 3), dtype=np.uint8)).save(root / f'c{c}' / f'{i}.png')
    return root


_OPEN = []


@pytest.fixture(autouse=True)
def _close_loaders():
    yield
    while _OPEN:  # idle persistent workers hold hundreds of MB each: stop them after every test
        _OPEN.pop().close()


def _loader(folder, num_workers, persistent=True, seed=7, **kwargs):
    loader = create_loader(ImageDataset(folder), 20, batch_size=4, is_training=True, num_workers=num_workers,
                           persistent_workers=persistent, seed=seed, **{**AUGMENT, **kwargs})
    _OPEN.append(loader)
    return loader


def _epoch(loader, epoch):
    set_loader_epoch(loader, epoch)
    return [(x.numpy(), y.numpy()) for x, y in loader]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, u) and np.array_equal(y, v) for (x, y), (u, v) in zip(a, b))


@pytest.fixture(scope='module')
def reference(folder):
    """Epoch 3 loaded in this process by a fresh loader."""
    return _epoch(_loader(folder, 0), 3)


@pytest.mark.parametrize('num_workers, persistent', [(0, True), (1, True), (2, True), (2, False)])
def test_epoch_batches_do_not_depend_on_workers_or_history(folder, reference, num_workers, persistent):
    fresh = _loader(folder, num_workers, persistent)
    assert _same(_epoch(fresh, 3), reference), 'a fresh loader (a resumed run) loads other batches'
    seasoned = _loader(folder, num_workers, persistent)
    for epoch in (0, 1, 2):
        _epoch(seasoned, epoch)
    assert _same(_epoch(seasoned, 3), reference), 'a loader that ran epochs 0-2 loads other batches'


def test_persistent_workers_get_each_new_epoch(folder, reference):
    loader = _loader(folder, 2)
    first = _epoch(loader, 2)
    assert _same(_epoch(loader, 3), reference)
    assert _same(_epoch(loader, 2), first)  # and back: only the epoch number counts


def test_epochs_seeds_and_ranks_differ(folder, reference):
    loader = _loader(folder, 1)
    assert not _same(_epoch(loader, 4), reference)
    assert not _same(_epoch(_loader(folder, 0, seed=8), 3), reference)
    # the same images (same shuffle) augmented for another rank: only the key's rank differs
    ds = ImageDataset(folder, transform=create_transform(20, is_training=True, **AUGMENT))
    rank0, rank1 = ds[SampleKey(4, 7, 0, 3)][0], ds[SampleKey(4, 7, 1, 3)][0]
    assert not np.array_equal(rank0, rank1)
    np.testing.assert_array_equal(rank0, ds[SampleKey(4, 7, 0, 3)][0])


def test_each_sample_is_its_own_stream(folder):
    """A sample's augmentation does not depend on which samples were loaded before it."""
    ds = ImageDataset(folder, transform=create_transform(20, is_training=True, **AUGMENT))
    alone = ds[SampleKey(6, 1, 0, 2)][0]
    for i in range(5):
        ds[SampleKey(i, 1, 0, 2)]
    np.testing.assert_array_equal(ds[SampleKey(6, 1, 0, 2)][0], alone)


def test_loading_leaves_the_main_process_generators_alone(folder):
    """The training loop's own draws (mixup, dropout...) must not depend on the loader either."""
    for num_workers in (0, 2):
        loader = _loader(folder, num_workers)
        set_loader_epoch(loader, 0)
        random.seed(11)
        np.random.seed(11)
        expected = random.random(), np.random.random()
        random.seed(11)
        np.random.seed(11)
        batches = list(loader)  # starting paddle's workers draws their base seed from numpy: undone
        assert batches and (random.random(), np.random.random()) == expected, num_workers


def test_close_stops_persistent_workers_and_the_next_pass_restarts_them(folder, reference):
    loader = _loader(folder, 2)
    _epoch(loader, 0)
    workers = list(loader._iterator._workers)
    loader.close()
    assert not any(w.is_alive() for w in workers)
    assert _same(_epoch(loader, 3), reference)


def test_sample_rng_seeds_from_the_key_only():
    def draws(key):
        with sample_rng(key):
            return random.random(), float(np.random.random())
    key = SampleKey(5, 1, 2, 3)
    assert draws(key) == draws(SampleKey(5, 1, 2, 3))
    assert len({draws(k) for k in (key, SampleKey(6, 1, 2, 3), SampleKey(5, 0, 2, 3), SampleKey(5, 1, 0, 3),
                                   SampleKey(5, 1, 2, 4))}) == 5
    random.seed(0)
    assert draws(5) != draws(5)  # a plain index: the global streams, untouched
    assert int(key) == 5 and [10, 11, 12, 13, 14, 15][key] == 15


def test_distributed_sampler_keys_carry_rank_and_epoch(folder, monkeypatch):
    monkeypatch.setattr(paddle.distributed, 'get_world_size', lambda *a, **k: 2)
    monkeypatch.setattr(paddle.distributed, 'get_rank', lambda *a, **k: 1)
    loader = _loader(folder, 0, distributed=True)
    set_loader_epoch(loader, 5)
    keys = [k for batch in loader.batch_sampler for k in batch]
    assert all(isinstance(k, SampleKey) and (k.seed, k.rank, k.epoch) == (7, 1, 5) for k in keys)
    assert len(keys) == 8 and len(set(keys)) == 8
