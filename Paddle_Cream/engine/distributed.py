"""Running a mode on several processes: the ``paddle.distributed.launch`` command, visible GPUs,
``DataParallel``/SyncBatchNorm wrapping, and the device the parent's input checks use.

``NUM_GPU`` is the number of processes. Above 1, ``tools/main.py`` re-runs itself under
``python -m paddle.distributed.launch``: NCCL on GPUs, gloo between CPU processes when Paddle has no
GPU. The rank/world/all-reduce helpers themselves live in :mod:`pimm.utils.distributed`.
"""
import contextlib
import os
import sys
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import paddle

from .errors import UserError

__all__ = ['gpu_count', 'visible_gpus', 'launch_command', 'sync_batch_norm', 'data_parallel', 'on_cpu']


def gpu_count() -> int:
    """GPUs this process's CUDA runtime sees (0 for a CPU build of Paddle)."""
    if not paddle.device.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def visible_gpus(env: Mapping[str, str], cuda_count: int) -> Tuple[int, str]:
    """``(GPUs the launcher can give processes, how they were found)``.

    ``paddle.distributed.launch`` (3.x) numbers processes' devices by their position in
    ``CUDA_VISIBLE_DEVICES`` (indices, UUIDs or a SLURM subset alike); entries CUDA cannot open do not
    count, so a process is never handed one."""
    listed = env.get('CUDA_VISIBLE_DEVICES')
    if listed is None or listed == 'all':
        return cuda_count, f'{cuda_count} GPU(s) detected'
    labels = [d for d in listed.split(',') if d.strip()]
    return min(len(labels), cuda_count), f"CUDA_VISIBLE_DEVICES={listed!r}, {cuda_count} usable"


def launch_command(num_procs: int, script: str, args: Sequence[str], log_dir: str,
                   env: Optional[Mapping[str, str]] = None,
                   cuda_count: Optional[int] = None) -> Tuple[List[str], Dict[str, str]]:
    """``(command, environment)`` running ``script args`` on ``num_procs`` processes of this node.

    Only ``--nproc_per_node`` is passed: the launcher then gives process i the i-th visible GPU
    (``--devices`` would be read as labels out of ``CUDA_VISIBLE_DEVICES`` and fail on any subset).
    A CPU build of Paddle gets the environment without ``CUDA_VISIBLE_DEVICES``, so the launcher
    starts gloo processes whatever that variable says. More processes than visible GPUs, or a GPU
    build that sees none, is a :class:`UserError`."""
    env = dict(os.environ if env is None else env)
    compiled_with_cuda = paddle.device.is_compiled_with_cuda() if cuda_count is None else True
    cuda_count = gpu_count() if cuda_count is None else int(cuda_count)
    if compiled_with_cuda:
        usable, found = visible_gpus(env, cuda_count)
        if usable == 0:
            raise UserError(f'NUM_GPU {num_procs}: this Paddle is built for GPUs but sees none ({found}); '
                            f'check CUDA_VISIBLE_DEVICES and nvidia-smi')
        if num_procs > usable:
            raise UserError(f'NUM_GPU {num_procs} but only {usable} GPU(s) can be used ({found}): lower NUM_GPU '
                            f'or make more devices visible')
    else:
        env.pop('CUDA_VISIBLE_DEVICES', None)
    cmd = [sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', str(num_procs),
           '--log_dir', log_dir, script, *args]
    return cmd, env


def sync_batch_norm(net: paddle.nn.Layer) -> paddle.nn.Layer:
    """Every BatchNorm of ``net`` turned into pimm's ``SyncBatchNorm`` (``paddle.nn.SyncBatchNorm`` with
    PyTorch's running-variance update; GPUs only), in place: the parameter and statistics tensors are
    kept, so optimizers, EMA and checkpoints are unaffected."""
    from pimm.models.layers.norm import convert_sync_batchnorm
    return convert_sync_batchnorm(net)


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
        net = sync_batch_norm(net)
    return paddle.DataParallel(net, find_unused_parameters=find_unused_parameters)


@contextlib.contextmanager
def on_cpu() -> Iterator[None]:
    """Inside, new tensors and layers live on the CPU; the previous device is restored after.

    The parent of a multi-process run checks its inputs (building the hypernetwork and its FLOPs
    table, or the retrain model) here: on the default device that would open a CUDA context on
    GPU 0 and keep its cached memory for the whole run, beside rank 0's."""
    previous = paddle.get_device()
    paddle.set_device('cpu')
    try:
        yield
    finally:
        paddle.set_device(previous)


def cpu_math_threads(world: int) -> Optional[int]:
    """On CPU, give each of the ``world`` training processes its share of the cores for math (Paddle's
    import leaves dygraph at one thread); returns the count, None on a GPU (its kernels do not use it)."""
    from pimm.utils.threads import use_all_cores
    if not paddle.get_device().startswith('cpu'):
        return None
    return use_all_cores(world)
