"""pimm.data.prefetch: device normalisation and random erasing against torchvision/timm, and its RNG."""
import random

import numpy as np
import paddle
import pytest
import torch
from PIL import Image
from timm.data.random_erasing import RandomErasing as TimmRandomErasing
from torchvision.transforms import functional as tvF

from pimm.data import DeviceBatchTransform
from pimm.data.prefetch import erasing_generators
from pimm.data.random_erasing import RandomErasing

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _batch(images, targets=None):
    targets = np.zeros(len(images), np.int64) if targets is None else np.asarray(targets, np.int64)
    return [paddle.to_tensor(images), paddle.to_tensor(targets)]


def _all_levels_hwc():
    # every uint8 level in every channel, each channel in a different order
    rng = np.random.default_rng(0)
    return np.stack([rng.permutation(256).astype(np.uint8).reshape(16, 16) for _ in range(3)], axis=-1)


def test_normalisation_equals_torchvision_for_every_level():
    pixels = _all_levels_hwc()
    reference = tvF.normalize(tvF.to_tensor(Image.fromarray(pixels)), MEAN, STD).numpy()
    images, targets = DeviceBatchTransform(MEAN, STD).begin_pass()(_batch(pixels.transpose(2, 0, 1)[None]))
    assert images.dtype == paddle.float32 and targets.dtype == paddle.int64
    np.testing.assert_array_equal(images.numpy()[0], reference)
    # the check can tell arithmetics apart: timm's prefetcher form rounds differently for some levels
    x = pixels.transpose(2, 0, 1).astype(np.float32)
    mean255 = (np.float32(255) * np.asarray(MEAN, np.float32))[:, None, None]
    std255 = (np.float32(255) * np.asarray(STD, np.float32))[:, None, None]
    assert ((x - mean255) / std255 != reference).any()


def test_skipped_images_become_zero_and_float_batches_pass_through():
    pixels = np.full((3, 3, 4, 4), 200, np.uint8)
    out = DeviceBatchTransform(MEAN, STD, zero_skipped=True).begin_pass()(_batch(pixels, [0, -1, 2]))[0].numpy()
    assert not out[1].any() and out[[0, 2]].all()
    floats = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(DeviceBatchTransform(MEAN, STD).begin_pass()(_batch(floats))[0].numpy(), floats)


@pytest.mark.parametrize('kwargs', [dict(probability=0.5), dict(probability=1.0, max_count=3),
                                    dict(probability=0.3, min_area=0.1, max_area=0.6, min_aspect=0.5)])
def test_const_erasing_equals_timm_from_the_same_state(kwargs):
    seed, rank, epoch = 7, 1, 4
    device = DeviceBatchTransform(MEAN, STD, RandomErasing(mode='const', **kwargs), seed=seed, rank=rank)
    device.set_epoch(epoch)
    prepare = device.begin_pass()
    geometry, _ = erasing_generators(seed, rank, epoch)
    random.setstate(geometry.getstate())  # timm draws its boxes from the global random module
    theirs = TimmRandomErasing(mode='const', device='cpu', **kwargs)
    erased = 0
    for _ in range(3):  # one stream across the batches of a pass
        ours = prepare(_batch(np.ones((8, 3, 20, 24), np.float32)))[0].numpy()
        np.testing.assert_array_equal(ours, theirs(torch.ones(8, 3, 20, 24)).numpy())
        erased += (ours == 0).reshape(8, -1).any(axis=1).sum()
    assert 0 < erased


@pytest.mark.parametrize('mode', ['rand', 'pixel'])
def test_noise_modes_keep_the_boxes_and_fill_standard_normal(mode):
    def run(fill_mode):
        device = DeviceBatchTransform(MEAN, STD, RandomErasing(1.0, min_area=0.2, max_area=0.4, mode=fill_mode),
                                      seed=3)
        prepare = device.begin_pass()
        return np.concatenate([prepare(_batch(np.full((16, 3, 24, 24), np.nan, np.float32)))[0].numpy()
                               for _ in range(10)])
    const, noisy = run('const'), run(mode)
    erased = ~np.isnan(noisy)
    np.testing.assert_array_equal(erased, const == 0)  # the same boxes whatever the fill
    values = []
    for img, mask in zip(noisy, erased[:, 0]):
        vals = img[:, mask]
        if mode == 'rand':
            assert (vals == vals[:, :1]).all()  # one value per channel
        else:
            assert len(np.unique(vals)) > vals.shape[1]
        values.append(vals[:, 0])
    values = np.concatenate(values)
    assert abs(values.mean()) < 0.12 and abs(values.std() - 1) < 0.1


def _erased_pass(seed, rank, epoch=None, passes=1):
    device = DeviceBatchTransform(MEAN, STD, RandomErasing(0.5, mode='pixel', max_count=2), seed=seed, rank=rank)
    if epoch is not None:
        device.set_epoch(epoch)
    for _ in range(passes):
        prepare = device.begin_pass()
    pixels = np.random.default_rng(5).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)
    return np.stack([prepare(_batch(pixels))[0].numpy() for _ in range(2)])


def test_erasing_randomness_comes_from_seed_rank_and_epoch_only():
    first = _erased_pass(seed=1, rank=0, epoch=3)
    np.testing.assert_array_equal(first, _erased_pass(seed=1, rank=0, epoch=3))  # a resumed run
    for other in (dict(seed=1, rank=0, epoch=4), dict(seed=1, rank=1, epoch=3), dict(seed=2, rank=0, epoch=3)):
        assert not np.array_equal(first, _erased_pass(**other)), other
    # without set_epoch each pass moves on to the next epoch, like DistributedBatchSampler
    np.testing.assert_array_equal(_erased_pass(seed=1, rank=0, passes=2), _erased_pass(seed=1, rank=0, epoch=1))


@pytest.mark.parametrize('batch, fragment', [
    (_batch(np.zeros((2, 3, 4, 4), np.int32)), 'uint8 or float32'),
    (_batch(np.zeros((2, 1, 4, 4), np.uint8)), r'\[N, 3, H, W\]'),
    ({'image': paddle.zeros([1, 3, 4, 4])}, 'batches of tensors'),
])
def test_bad_batches_raise_one_line(batch, fragment):
    with pytest.raises(ValueError, match=fragment):
        DeviceBatchTransform(MEAN, STD).begin_pass()(batch)
    with pytest.raises(ValueError, match='3 values'):
        DeviceBatchTransform((0.5, 0.5), STD)


def test_the_noise_reaches_a_gpu_through_page_locked_memory_without_blocking(monkeypatch):
    """Issue 23, defect 5: on a GPU the erasing noise is copied from page-locked memory with a copy that does
    not block (to_tensor from pageable memory is a synchronisation on Paddle's blocking streams), and the buffers
    stay alive for the copies in flight. A CPU cannot run it: the GPU place and the copy are stand-ins that
    record what they are given."""
    import pimm.data.prefetch as prefetch
    made, copies = [], []

    class Pinned:
        def __init__(self, array):
            self.array = array

        def _copy_to(self, place, blocking):
            copies.append((place, blocking))
            return paddle.to_tensor(self.array)

    class GpuPlace:
        def is_gpu_place(self):
            return True

    class PinnedPlace:   # paddle.CUDAPinnedPlace() cannot be built by a CPU-only Paddle
        pass

    real = paddle.to_tensor

    def to_tensor(data, *args, place=None, **kwargs):
        if isinstance(place, PinnedPlace):
            made.append(Pinned(np.asarray(data)))
            return made[-1]
        return real(data, *args, place=place, **kwargs)
    monkeypatch.setattr(prefetch.paddle, 'to_tensor', to_tensor)
    monkeypatch.setattr(prefetch.paddle, 'CUDAPinnedPlace', PinnedPlace)
    device = DeviceBatchTransform(MEAN, STD, RandomErasing(1.0, mode='pixel'), seed=0, rank=0)
    gpu = GpuPlace()
    for _ in range(3):
        flat = device._upload(np.arange(6, dtype=np.float32), gpu)
        np.testing.assert_array_equal(flat.numpy(), np.arange(6))
    assert copies == [(gpu, False)] * 3 and len(made) == 3
    assert device._in_flight == made[-2:]   # the last two buffers are kept for their copies
    cpu = device._upload(np.ones(3, np.float32), paddle.CPUPlace())   # a CPU batch: a plain copy
    assert len(made) == 3 and cpu.place.is_cpu_place()
