"""pimm.data loaders and samplers: shards, worker processes, distributed splits."""
import numpy as np
import paddle
import pytest
from PIL import Image

from pimm.data import (CorruptImageError, ImageDataset, LoaderWorkerError, OrderedShardSampler, collate_numpy,
                       create_loader, create_transform, load_rgb, set_loader_epoch)


@pytest.fixture(scope='module')
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny')
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (30, 44), (37, 37), (50, 21), (26, 33), (45, 45), (31, 29)]
    for i, (w, h) in enumerate(sizes):
        folder = root / f'class{i % 3}'
        folder.mkdir(exist_ok=True)
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        img.convert('L' if i == 4 else 'RGB').save(folder / f'img{i}.{"png" if i % 2 else "jpg"}')
    return root


@pytest.mark.parametrize('contiguous', [True, False])
def test_shards_are_disjoint_and_cover_everything(contiguous):
    shards = [OrderedShardSampler(10, num_replicas=3, rank=r, contiguous=contiguous) for r in range(3)]
    indices = [list(s) for s in shards]
    assert [len(s) for s in shards] == [len(i) for i in indices] == [4, 3, 3]
    assert sorted(sum(indices, [])) == list(range(10))
    assert all(i == sorted(i) for i in indices)
    if contiguous:
        assert indices == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    else:
        assert indices == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert list(OrderedShardSampler(2, num_replicas=3, rank=2)) == []  # fewer samples than ranks


@pytest.mark.parametrize('kwargs', [dict(num_replicas=0), dict(rank=3, num_replicas=3), dict(rank=-1)])
def test_shard_sampler_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        OrderedShardSampler(10, **kwargs)


@pytest.mark.parametrize('use_prefetcher', [True, False])
def test_eval_loader_with_workers_matches_direct_transform(tiny_folder, use_prefetcher):
    # the float pipeline applied image by image; with the prefetcher the loader normalises on the device
    ds = ImageDataset(tiny_folder)
    loader = create_loader(ds, 24, batch_size=3, num_workers=2, crop_pct=0.9, interpolation='bicubic',
                           use_prefetcher=use_prefetcher)
    direct = create_transform(24, crop_pct=0.9, interpolation='bicubic')
    images, targets = [], []
    for x, y in loader:
        assert isinstance(x, paddle.Tensor) and x.dtype == paddle.float32 and y.dtype == paddle.int64
        images.append(x.numpy())
        targets.append(y.numpy())
    images, targets = np.concatenate(images), np.concatenate(targets)
    assert len(loader) == 3 and images.shape == (7, 3, 24, 24)
    assert targets.tolist() == ds.targets
    expected = np.stack([direct(load_rgb(path)) for path, _ in ds.samples])
    np.testing.assert_array_equal(images, expected)


def test_distributed_eval_splits_without_padding(tiny_folder, monkeypatch):
    monkeypatch.setattr(paddle.distributed, 'get_world_size', lambda *a, **k: 3)
    seen = []
    for rank in range(3):
        monkeypatch.setattr(paddle.distributed, 'get_rank', lambda *a, r=rank, **k: r)
        loader = create_loader(ImageDataset(tiny_folder), 16, batch_size=2, num_workers=0, distributed=True)
        batches = [y.numpy().tolist() for _, y in loader]
        seen.append([i for b in loader.batch_sampler for i in b])
        assert sum(batches, []) == [loader.dataset.targets[i] for i in seen[-1]]
    assert seen == [[0, 1, 2], [3, 4], [5, 6]]


def test_distributed_training_uses_shuffled_equal_shards(tiny_folder, monkeypatch):
    monkeypatch.setattr(paddle.distributed, 'get_world_size', lambda *a, **k: 2)
    monkeypatch.setattr(paddle.distributed, 'get_rank', lambda *a, **k: 1)
    loader = create_loader(ImageDataset(tiny_folder), 16, batch_size=2, is_training=True, num_workers=0,
                           distributed=True)
    sampler = loader.batch_sampler
    assert isinstance(sampler, paddle.io.DistributedBatchSampler)
    assert sampler.nranks == 2 and sampler.local_rank == 1 and sampler.shuffle and sampler.drop_last
    set_loader_epoch(loader, 3)
    first = list(sampler)
    set_loader_epoch(loader, 3)
    assert list(sampler) == first and all(len(b) == 2 for b in first)
    set_loader_epoch(loader, 4)
    assert list(sampler) != first


def test_training_loader_batches(tiny_folder):
    loader = create_loader(ImageDataset(tiny_folder), (3, 20, 28), batch_size=3, is_training=True, num_workers=0,
                           re_prob=0.0, interpolation='random')
    batches = list(loader)
    assert len(batches) == 2  # drop_last defaults to True when training
    for x, y in batches:
        assert list(x.shape) == [3, 3, 20, 28] and x.dtype == paddle.float32 and list(y.shape) == [3]


def test_training_workers_are_seeded_reproducibly(tiny_folder):
    def run(main_seed, seed):
        np.random.seed(main_seed)  # paddle draws the workers' base seed from the main process's numpy RNG
        loader = create_loader(ImageDataset(tiny_folder), 16, batch_size=7, is_training=True, num_workers=2,
                               persistent_workers=False, seed=seed)
        set_loader_epoch(loader, 0)
        return [x.numpy() for x, _ in loader][0]
    first = run(123, 5)
    np.testing.assert_array_equal(first, run(123, 5))
    assert not np.array_equal(first, run(123, 6))


def test_skip_corrupt_through_loader(tmp_path):
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
        Image.new('RGB', (20, 20), (200, 10, 10)).save(tmp_path / name / 'ok.png')
    (tmp_path / 'b' / 'zz_broken.jpg').write_bytes(b'\xff\xd8\xff garbage')
    loader = create_loader(ImageDataset(tmp_path, skip_corrupt=True), 8, batch_size=4, num_workers=0)
    (x, y), = list(loader)
    assert y.numpy().tolist() == [0, 1, -1]
    assert not x.numpy()[2].any()


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')  # paddle's reader thread
@pytest.mark.parametrize('num_workers', [0, 1])
def test_corrupt_image_error_stays_one_line(tmp_path, num_workers):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'broken.jpg').write_bytes(b'\xff\xd8\xff garbage')
    loader = create_loader(ImageDataset(tmp_path), 8, batch_size=1, num_workers=num_workers,
                           persistent_workers=False)
    with pytest.raises(CorruptImageError) as info:
        list(loader)
    path = str(tmp_path / 'a' / 'broken.jpg')
    assert str(info.value).startswith(f'{path}: corrupt or unreadable image (')
    assert '\n' not in str(info.value) and info.value.path == path


class _FailingDataset:
    transform = None

    def __len__(self):
        return 3

    def __getitem__(self, index):
        if index == 1:
            raise KeyError('boom')
        return np.zeros((3, 8, 8), np.float32), 0


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')  # paddle's reader thread
def test_other_data_errors_do_not_hang(tiny_folder):
    # in-process: the dataset's own exception; in a worker: a one-line LoaderWorkerError
    with pytest.raises(KeyError, match='boom'):
        list(create_loader(_FailingDataset(), 8, batch_size=1, num_workers=0))
    with pytest.raises(LoaderWorkerError) as info:
        list(create_loader(_FailingDataset(), 8, batch_size=1, num_workers=1, persistent_workers=False))
    assert '\n' not in str(info.value)


def test_collate_and_bad_arguments(tiny_folder):
    images, targets = collate_numpy([(np.zeros((3, 2, 2), np.float32), 1), (np.ones((3, 2, 2), np.float32), 4)])
    assert images.shape == (2, 3, 2, 2) and images.dtype == np.float32
    assert targets.dtype == np.int64 and targets.tolist() == [1, 4]
    ds = ImageDataset(tiny_folder)
    for kwargs in (dict(batch_size=0), dict(batch_size=2, num_workers=-1), dict(batch_size=2, seed=-3),
                   dict(batch_size=2, crop_pct=0)):
        with pytest.raises(ValueError):
            create_loader(ds, 16, **kwargs)
