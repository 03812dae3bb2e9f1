"""Run under ``python -m paddle.distributed.launch --nproc_per_node 2`` by test_multiprocess.py.

``dist_worker.py allreduce OUT``: the search step with its one coalesced all-reduce of the path's
gradients against the previous implementation (``paddle.DataParallel(find_unused_parameters=True)``,
per-tensor SGD, off-path gradients released) from the same weights, paths and per-rank batches.

``dist_worker.py resume OUT CHECKPOINT DATA_DIR``: ``resume_if_asked`` where only rank 0 can see the
checkpoint; every rank reports digests of what it holds.
"""
import builtins
import copy
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)
os.environ.setdefault('GLOG_minloglevel', '2')

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.distributed as dist  # noqa: E402

from pimm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy  # noqa: E402
from pimm.optim import create_optimizer  # noqa: E402
from pimm.utils.distributed import init_distributed  # noqa: E402
from Paddle_Cream.models.hypernet import HyperNet  # noqa: E402
from Paddle_Cream.search import PathSampler  # noqa: E402
from Paddle_Cream.search.flops_table import PathFlops  # noqa: E402
from Paddle_Cream.search.supernet_step import SearchSettings, SupernetStep  # noqa: E402

STEPS, STA, CLASSES, RES, BATCH = 6, [1, 1, 2, 1, 1], 10, 32, 4


def _digest(arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _write(out: str, record) -> None:
    gathered = []
    dist.all_gather_object(gathered, record)
    if dist.get_rank() == 0:
        with open(out, 'w') as f:
            json.dump(gathered, f)


def allreduce(out: str) -> None:
    paddle.seed(0)
    ours_net = HyperNet(STA, CLASSES, resolution=RES)
    ref_net = copy.deepcopy(ours_net)
    flops = PathFlops(ours_net, RES).flops
    kwargs = dict(opt='sgd', lr=0.1, weight_decay=1e-4, momentum=0.9)
    ours_opt = create_optimizer(ours_net, fused_units=ours_net.units(), **kwargs)
    ref_opt = create_optimizer(ref_net, **kwargs)
    ref_model = paddle.DataParallel(ref_net, find_unused_parameters=True)
    ce = LabelSmoothingCrossEntropy(0.1)
    step = SupernetStep(ours_net, ours_opt, PathSampler(STA, flops, 0, 1e4, seed=3), SearchSettings(method='spos'),
                        ce, SoftTargetCrossEntropy())
    ref_sampler = PathSampler(STA, flops, 0, 1e4, seed=3)
    initial = {k: v.numpy().copy() for k, v in ours_net.state_dict().items()}
    rng = np.random.RandomState(100 + dist.get_rank())  # every rank its own batches
    for i in range(STEPS):
        x = paddle.to_tensor(rng.randn(BATCH, 3, RES, RES).astype('float32'))
        y = paddle.to_tensor(rng.randint(0, CLASSES, BATCH).astype('int64'))
        step(x, y, epoch=0, iteration=i, lr=0.1)
        path, _ = ref_sampler.sample()
        ref_opt.clear_grad(set_to_zero=False)
        ce(ref_model(x, path), y).backward()
        keep = {id(p) for p in ref_net.path_parameters(path)}
        for p in ref_net.parameters():   # what the previous step did after backward
            if id(p) not in keep and p.grad is not None:
                p.clear_gradient(False)
        ref_opt.step()
    step.finish()
    ours, ref = ours_net.state_dict(), ref_net.state_dict()
    diff = max(float(np.abs(ours[k].numpy() - ref[k].numpy()).max()) for k in ref)
    scale = max(float(np.abs(ref[k].numpy()).max()) for k in ref)
    moved = sum(int(not np.array_equal(ours[k].numpy(), v)) for k, v in initial.items())
    trained = sorted(k for k, p in ours_net.named_parameters() if not p.stop_gradient)  # BN statistics are per rank
    _write(out, {'rank': dist.get_rank(), 'max_abs_diff': diff, 'max_abs': scale,
                 'weights': _digest(ours[k].numpy() for k in trained), 'entries': len(ours), 'moved': moved})


def _hide_from_rank_1(path: str) -> None:
    """This rank cannot see ``path`` (another node's local disk): opening or testing it fails."""
    real_open, real_isfile, real_exists = builtins.open, os.path.isfile, os.path.exists
    target = os.path.abspath(path)

    def hidden(p) -> bool:
        return isinstance(p, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(p)) == target

    def guarded_open(p, *a, **k):
        if hidden(p):
            raise FileNotFoundError(p)
        return real_open(p, *a, **k)
    builtins.open = guarded_open
    os.path.isfile = lambda p: False if hidden(p) else real_isfile(p)
    os.path.exists = lambda p: False if hidden(p) else real_exists(p)


def resume(out: str, checkpoint: str, data_dir: str) -> None:
    from Paddle_Cream.config import load_config
    from Paddle_Cream.engine.run_train import board_digest
    from Paddle_Cream.engine.search_setup import build_optimization, resume_if_asked
    from Paddle_Cream.search import MetaMatcher, PrioritizedBoard
    rank = dist.get_rank()
    if rank == 1:
        _hide_from_rank_1(checkpoint)
    cfg = load_config(os.path.join(ROOT, 'configs', 'demo', 'train.yaml'),
                      ['DATA_DIR', data_dir, 'RESUME_PATH', checkpoint, 'SUPERNET.FLOPS_MINIMUM', '0',
                       'SUPERNET.FLOPS_MAXIMUM', '150', 'SUPERNET.POOL_SIZE', '3', 'SUPERNET.META_STA_EPOCH', '0',
                       'DATASET.BATCH_SIZE', '16'])   # what the checkpoint was made with (fixed on resume)
    identity = json.loads(os.environ['RESUME_IDENTITY'])
    paddle.seed(1000 + rank)  # different initial weights on each rank: only the resume can make them equal
    hypernet = HyperNet(identity['sta_num'], identity['num_classes'], resolution=identity['image_size'])
    optimizer, _, ema, _ = build_optimization(cfg, hypernet, 10)
    board, matcher = PrioritizedBoard(3, cfg.ACC_GAP), MetaMatcher(identity['num_classes'], cfg.SUPERNET.SLICE)
    start, rows = resume_if_asked(cfg, identity, hypernet, optimizer, ema, board, matcher, None, lambda _: None)
    optimizer.fused.check()
    opt_state = optimizer.state_dict()['state']
    _write(out, {'rank': rank, 'start_epoch': start, 'rows': len(rows),
                 'weights': _digest(v.numpy() for _, v in sorted(hypernet.state_dict().items())),
                 'ema': _digest(v.numpy() for _, v in sorted(ema.state_dict().items())),
                 'optimizer': _digest(opt_state[i]['momentum_buffer'].numpy() for i in sorted(opt_state)),
                 'board': board_digest(board), 'board_size': len(board),
                 'meta': _digest(p.numpy() for p in matcher.parameters())})


if __name__ == '__main__':
    init_distributed()
    {'allreduce': allreduce, 'resume': resume}[sys.argv[1]](*sys.argv[2:])
