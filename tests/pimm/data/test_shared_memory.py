"""shared_memory_bytes: what a loader's workers hold in /dev/shm, at the paper's settings and measured."""
import os
import time

import numpy as np
import pytest
from PIL import Image

from pimm.data import ImageDataset, create_loader, shared_memory_bytes

SHM = '/dev/shm'


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('shm')
    (root / 'c').mkdir()
    rng = np.random.default_rng(0)
    for i in range(64):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / 'c' / f'{i}.png')
    return root


@pytest.mark.parametrize('use_prefetcher, expected', [(True, 327_566_336), (False, 1_310_213_120)])
def test_paper_settings(folder, use_prefetcher, expected):
    # batch 128 at 224 px, WORKERS 8, paddle's prefetch_factor 2: 2 * 8 batches requested ahead + 1 held
    loader = create_loader(ImageDataset(folder), 224, batch_size=128, num_workers=8, use_prefetcher=use_prefetcher)
    image_bytes = 128 * 3 * 224 * 224 * (1 if use_prefetcher else 4)
    assert shared_memory_bytes(loader) == expected == 17 * (image_bytes + 128 * 8)
    assert shared_memory_bytes(create_loader(ImageDataset(folder), 224, batch_size=128, num_workers=0)) == 0


def _worker_files(pids):
    # paddle names each worker's shared-memory file paddle_<worker pid>_<n>_<random>
    prefixes = tuple(f'paddle_{pid}_' for pid in pids)
    return [os.path.join(SHM, f) for f in os.listdir(SHM) if f.startswith(prefixes)]


@pytest.mark.skipif(not os.path.isdir(SHM), reason='paddle puts worker batches in /dev/shm files, on Linux only')
@pytest.mark.parametrize('use_prefetcher', [True, False])
def test_estimate_bounds_what_the_workers_hold(folder, use_prefetcher):
    loader = create_loader(ImageDataset(folder), 32, batch_size=4, num_workers=2, use_prefetcher=use_prefetcher)
    bound = shared_memory_bytes(loader)
    per_batch = bound // (loader.prefetch_factor * loader.num_workers + 1)
    batches = iter(loader)
    held = next(batches)  # noqa: F841 (the loop's batch stays referenced while we measure)
    pids = [w.pid for w in loader._iterator._workers]
    sizes, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:  # until the workers have filled paddle's queue
        time.sleep(0.3)
        sizes.append(sum(os.path.getsize(f) for f in _worker_files(pids)))
        if len(sizes) > 4 and len(set(sizes[-4:])) == 1 and sizes[-1] >= bound - per_batch:
            break
    measured = sizes[-1]
    files = len(_worker_files(pids))
    # each file adds a 64-byte header; the prefetcher drops its uint8 batch once normalised
    assert bound - per_batch <= measured <= bound + 64 * files, (measured, bound)
    batches.close()
