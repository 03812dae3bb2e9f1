"""paddle.distributed helpers: rank/world, all-reduce of sums, and the launcher command.

``NUM_GPU`` is the number of processes. Above 1, ``tools/main.py`` re-runs
itself under ``python -m paddle.distributed.launch``: NCCL on GPUs, gloo
between CPU processes when Paddle has no GPU.
"""
import os
import sys
from typing import List, Sequence

import numpy as np
import paddle
import paddle.distributed as dist

__all__ = ['launched_world_size', 'init_distributed', 'get_rank', 'get_world_size', 'is_main_process',
           'all_reduce_sum', 'all_reduce_max', 'broadcast_array', 'broadcast_parameters', 'launch_command', 'gpu_count',
           'data_parallel']


def launched_world_size() -> int:
    """World size set by ``paddle.distributed.launch`` for this process (1 when not launched)."""
    return int(os.environ.get('PADDLE_TRAINERS_NUM', '1'))


def gpu_count() -> int:
    if not paddle.device.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def init_distributed() -> int:
    """Join the process group when launched with several processes; returns the world size."""
    world = launched_world_size()
    if world > 1 and not dist.is_initialized():
        dist.init_parallel_env()
    return world


def data_parallel(net: paddle.nn.Layer, world: int, sync_bn: bool = False,
                  find_unused_parameters: bool = False) -> paddle.nn.Layer:
    """What trains: ``net`` itself in one process; above one, ``paddle.DataParallel`` around it, with
    every BatchNorm first turned into ``paddle.nn.SyncBatchNorm`` when ``sync_bn`` (GPUs only).

    The conversion replaces ``net``'s BatchNorm sublayers in place and keeps their parameter and
    statistics tensors, so optimizers, EMA and checkpoints built on ``net`` are unaffected.
    """
    if world <= 1:
        return net
    if sync_bn:
        net = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return paddle.DataParallel(net, find_unused_parameters=find_unused_parameters)


def get_rank() -> int:
    return dist.get_rank() if launched_world_size() > 1 else 0


def get_world_size() -> int:
    return dist.get_world_size() if launched_world_size() > 1 else 1


def is_main_process() -> bool:
    return get_rank() == 0


def all_reduce_sum(values: Sequence[float]) -> np.ndarray:
    """Element-wise sum of ``values`` over all processes (float64 for exact counts)."""
    arr = np.asarray(values, dtype=np.float64)
    if get_world_size() == 1:
        return arr
    tensor = paddle.to_tensor(arr)
    dist.all_reduce(tensor)
    return tensor.numpy()


def all_reduce_max(value: float) -> float:
    """The largest ``value`` over all processes (e.g. the slowest rank's wall time)."""
    if get_world_size() == 1:
        return float(value)
    tensor = paddle.to_tensor(np.asarray([value], dtype=np.float64))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.numpy()[0])


def launch_command(num_procs: int, script: str, args: Sequence[str], log_dir: str) -> List[str]:
    """The ``paddle.distributed.launch`` command running ``script args`` on ``num_procs`` processes."""
    cmd = [sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', str(num_procs),
           '--log_dir', log_dir]
    gpus = gpu_count()
    if gpus:
        if gpus < num_procs:
            raise ValueError(f'NUM_GPU {num_procs} but only {gpus} GPU(s) are visible')
        cmd += ['--devices', ','.join(str(i) for i in range(num_procs))]
    return cmd + [script, *args]


def broadcast_array(value: np.ndarray, src: int = 0) -> np.ndarray:
    """Rank ``src``'s array on every rank (same shape and dtype everywhere)."""
    if get_world_size() == 1:
        return value
    tensor = paddle.to_tensor(np.ascontiguousarray(value))
    dist.broadcast(tensor, src=src)
    return tensor.numpy()


def broadcast_parameters(params, src: int = 0) -> None:
    """Copy rank ``src``'s values of ``params`` to every rank, in place."""
    if get_world_size() == 1:
        return
    for p in params:
        dist.broadcast(p, src=src)
