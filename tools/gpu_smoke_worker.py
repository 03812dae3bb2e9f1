#!/usr/bin/env python
"""The GPU smoke check's mechanism items, each run in its own process (two under paddle.distributed.launch
for the multi-rank ones): what CPU tests can only check with stand-ins, checked on the real device.

    python tools/gpu_smoke_worker.py ITEM OUT.json

ITEM: ``overflow`` (an AMP search step whose gradients overflow moves no weight or momentum, the steps after it
are applied with at most one device-to-host copy each, the loss scale within a factor 2, the fused storage intact
after GPU backwards), ``bn_variance`` (BatchNorm2d's running statistics
after one step on a [4, C, 1, 1] batch against PyTorch's formula), ``sync_bn`` (2 ranks, different data:
SyncBatchNorm's running statistics equal on both ranks and PyTorch's formula over both batches),
``teacher`` (2 ranks whose meta-layer scores differ train with rank 0's teachers and end with equal
weights). Rank 0 writes
``{"ok": bool, "detail": str}`` to OUT.json.
"""
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('GLOG_minloglevel', '2')

import numpy as np  # noqa: E402
import paddle  # noqa: E402

STA, CLASSES, RES, BATCH = [1, 1, 2, 1, 1], 10, 32, 8


def _rank() -> int:
    from pimm.utils.distributed import get_rank
    return get_rank()


def _batches(count: int, seed: int):
    rng = np.random.RandomState(seed)
    return [(paddle.to_tensor(rng.randn(BATCH, 3, RES, RES).astype('float32')),
             paddle.to_tensor(rng.randint(0, CLASSES, BATCH).astype('int64'))) for _ in range(count)]


def _search(scaler=None, pick='top1', board=None, matcher=None):
    from pimm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from pimm.optim import create_optimizer
    from Paddle_Cream.models.hypernet import HyperNet
    from Paddle_Cream.search import PathSampler
    from Paddle_Cream.search.flops_table import PathFlops
    from Paddle_Cream.search.supernet_step import SearchSettings, SupernetStep
    paddle.seed(0)
    net = HyperNet(STA, CLASSES, resolution=RES)
    net.train()
    optimizer = create_optimizer(net, opt='sgd', lr=0.05, weight_decay=1e-4, momentum=0.9, fused_units=net.units())
    settings = SearchSettings(method='cream', pick_method=pick, meta_sta_epoch=0, update_iter=4, slice_size=2,
                              meta_lr=1e-2)
    sampler = PathSampler(STA, PathFlops(net, RES).flops, 0, 1e4, seed=3)
    return SupernetStep(net, optimizer, sampler, settings, LabelSmoothingCrossEntropy(0.1), SoftTargetCrossEntropy(),
                        board, matcher, scaler=scaler)


def overflow() -> dict:
    """One overflowed AMP step (no weight or momentum may move), then five that must be applied, each with at most
    one device-to-host copy (the skip decided on the device)."""
    from pimm.utils.amp import GradScaler
    from pimm.utils.host_copies import HostCopyCounter
    scaler = GradScaler(init_loss_scaling=1024)
    if not scaler._enable:
        return dict(ok=False, detail='the GradScaler is disabled on this device (not a GPU)')
    step = _search(scaler=scaler)
    fused, velocity = step.optimizer.fused, step.optimizer._velocity

    def trainable():   # each unit's weights (its gradient's size) and momentum; BN statistics follow every forward
        return [None if g is None else (v.numpy()[:int(g.size)].copy(), m.numpy().copy())
                for v, g, m in zip(fused.values, fused.grads, velocity)]
    batches = _batches(6, seed=1)
    x, y = batches[0]
    before = trainable()
    step(x * float('inf'), y, epoch=0, iteration=0, lr=0.05)
    step.finish()
    moved = [u for u, (a, b) in enumerate(zip(before, trainable()))
             if a is not None and not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))]
    skipped, copies = [], []
    for i, (x, y) in enumerate(batches[1:], start=1):
        before = trainable()
        with HostCopyCounter() as counter:   # the iteration and its settling (the metrics' one fetch)
            step(x, y, epoch=0, iteration=i, lr=0.05)
            path = step.finish().path
        copies.append(counter.count)
        units = step.hypernet.path_units(path)
        if all(before[u] is None or np.array_equal(before[u][0], trainable()[u][0]) for u in units):
            skipped.append(i)
    fused.check()   # every tensor and gradient still a view of its unit's buffers after GPU backwards
    scale = float(scaler._scale.numpy().reshape(-1)[0])
    ok = scaler.overflows == 1 and not moved and not skipped and scale >= 512 and max(copies) <= 1
    return dict(ok=ok, detail=f'overflows {scaler.overflows}, units moved by the overflowed step {moved}, later '
                              f'steps not applied {skipped}, loss scale {scale:g}, device-to-host copies per '
                              f'iteration {copies}')


def _pytorch_statistics(x: np.ndarray, momentum: float = 0.1):
    """PyTorch's running mean and variance after one training step from (0, 1): the unbiased batch variance."""
    values = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).astype(np.float64)
    return momentum * values.mean(1), (1 - momentum) + momentum * values.var(1, ddof=1)


def _relative(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def bn_variance() -> dict:
    from pimm.models.layers import BatchNorm2d
    x = np.random.RandomState(0).randn(4, 16, 1, 1).astype('float32') * 3 + 1
    bn = BatchNorm2d(16)
    bn.train()
    bn(paddle.to_tensor(x))
    mean, variance = _pytorch_statistics(x)
    errors = _relative(bn._mean.numpy(), mean), _relative(bn._variance.numpy(), variance)
    return dict(ok=max(errors) < 1e-4, detail=f'{paddle.device.get_device()}: relative error of the running mean '
                                              f'{errors[0]:.1e}, variance {errors[1]:.1e} (PyTorch\'s formula)')


def sync_bn() -> dict:
    import paddle.distributed as dist
    from pimm.models.layers import BatchNorm2d, convert_sync_batchnorm
    rank = _rank()
    data = [np.random.RandomState(r).randn(4, 16, 1, 1).astype('float32') * (r + 1) + r for r in range(2)]
    bn = convert_sync_batchnorm(BatchNorm2d(16))
    bn.train()
    bn(paddle.to_tensor(data[rank]))
    mean, variance = _pytorch_statistics(np.concatenate(data))
    mine = np.concatenate([bn._mean.numpy(), bn._variance.numpy()])
    gathered = []
    dist.all_gather_object(gathered, mine.tolist())
    same = np.array_equal(np.asarray(gathered[0]), np.asarray(gathered[1]))
    errors = _relative(bn._mean.numpy(), mean), _relative(bn._variance.numpy(), variance)
    return dict(ok=same and max(errors) < 1e-4, detail=f'equal on both ranks: {same}; relative error against '
                                                      f'PyTorch over both batches: mean {errors[0]:.1e}, variance '
                                                      f'{errors[1]:.1e}')


def teacher() -> dict:
    import paddle.distributed as dist
    from Paddle_Cream.search import MetaMatcher, PrioritizedBoard
    rank = _rank()
    matcher = MetaMatcher(CLASSES, 2)
    step = _search(pick='meta', board=PrioritizedBoard(3, 0.), matcher=matcher)
    bias = 1e3 if rank == 0 else -1e3
    for name in ('score_slices', 'scores'):
        real = getattr(matcher, name)

        def skewed(*args, _real=real, **kwargs):
            scores = _real(*args, **kwargs)
            return scores + bias * paddle.arange(scores.shape[0], dtype=scores.dtype)
        setattr(matcher, name, skewed)
    teachers = []
    for i, (x, y) in enumerate(_batches(10, seed=100 + rank)):
        result = step(x, y, epoch=1, iteration=i, lr=0.05)
        teachers.append(None if result is None else result.teacher)
    teachers.append(step.finish().teacher)
    trained = sorted(k for k, p in step.hypernet.named_parameters() if not p.stop_gradient)
    weights = hashlib.sha1(b''.join(step.hypernet.state_dict()[k].numpy().tobytes() for k in trained)).hexdigest()
    gathered = []
    dist.all_gather_object(gathered, (teachers, weights))
    chosen = sum(t is not None for t in teachers)
    same, equal = gathered[0][0] == gathered[1][0], gathered[0][1] == gathered[1][1]
    return dict(ok=same and equal and chosen > 0,
                detail=f'{chosen} steps with a teacher; the same teachers on both ranks: {same}; '
                       f'equal weights: {equal}')


ITEMS = {'overflow': overflow, 'bn_variance': bn_variance, 'sync_bn': sync_bn, 'teacher': teacher}
MULTI_RANK = ('sync_bn', 'teacher')


def main(argv) -> int:
    if len(argv) != 2 or argv[0] not in ITEMS:
        print(f'usage: gpu_smoke_worker.py {{{",".join(ITEMS)}}} OUT.json', file=sys.stderr)
        return 2
    from pimm.utils.distributed import init_distributed
    import Paddle_Cream  # noqa: F401
    init_distributed()
    try:
        result = ITEMS[argv[0]]()
    except Exception as e:   # a failed check is a FAIL line in the smoke check, with what happened
        result = dict(ok=False, detail=f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}')
    if _rank() == 0:
        with open(argv[1], 'w') as f:
            json.dump(result, f)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
