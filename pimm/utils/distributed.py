"""paddle.distributed helpers (timm keeps these in ``timm/utils/distributed.py``): rank and world size,
all-reduce and broadcast of numbers, arrays, tensors and picklable objects, and one coalesced
all-reduce of a list of gradient buffers.

Every helper is a no-op in a single process, so library code calls them unconditionally.
"""
import os
from typing import Any, List, Sequence

import numpy as np
import paddle
import paddle.distributed as dist

__all__ = ['launched_world_size', 'init_distributed', 'get_rank', 'get_world_size', 'is_main_process',
           'all_reduce_sum', 'all_reduce_max', 'all_reduce_sum_', 'broadcast_array', 'broadcast_tensors',
           'broadcast_object', 'average_gradients_', 'rank0_only']


def launched_world_size() -> int:
    """World size set by ``paddle.distributed.launch`` for this process (1 when not launched)."""
    return int(os.environ.get('PADDLE_TRAINERS_NUM', '1'))


def init_distributed() -> int:
    """Join the process group when launched with several processes; returns the world size."""
    world = launched_world_size()
    if world > 1 and not dist.is_initialized():
        dist.init_parallel_env()
    return world


def get_rank() -> int:
    return dist.get_rank() if launched_world_size() > 1 else 0


def get_world_size() -> int:
    return dist.get_world_size() if launched_world_size() > 1 else 1


def is_main_process() -> bool:
    return get_rank() == 0


def all_reduce_sum(values: Sequence[float]) -> np.ndarray:
    """Element-wise sum of ``values`` over all processes, on the host (float64 for exact counts).

    For once-an-epoch figures; inside a training step use :func:`all_reduce_sum_` on a device tensor."""
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


def all_reduce_sum_(tensor: paddle.Tensor) -> paddle.Tensor:
    """Sum ``tensor`` over all processes in place, on its device (no host synchronisation); returns it."""
    if get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def rank0_only(tensor: paddle.Tensor) -> paddle.Tensor:
    """``tensor`` on rank 0, zeros elsewhere: summed over the ranks (in an all-reduce that carries other sums
    too), every rank gets rank 0's values, so all decide as rank 0 did."""
    return tensor if get_rank() == 0 else paddle.zeros_like(tensor)


def broadcast_array(value: np.ndarray, src: int = 0) -> np.ndarray:
    """Rank ``src``'s array on every rank (same shape and dtype everywhere)."""
    if get_world_size() == 1:
        return value
    tensor = paddle.to_tensor(np.ascontiguousarray(value))
    dist.broadcast(tensor, src=src)
    return tensor.numpy()


def broadcast_tensors(tensors: Sequence[paddle.Tensor], src: int = 0) -> None:
    """Copy rank ``src``'s values of ``tensors`` (parameters, buffers, flat storage) to every rank, in place."""
    if get_world_size() == 1:
        return
    with paddle.no_grad():
        for t in tensors:
            dist.broadcast(t, src=src)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s picklable ``obj`` on every rank. Only for values this job produced itself (a rank's
    own decisions): pickle is never used on files here."""
    if get_world_size() == 1:
        return obj
    holder: List[Any] = [obj if get_rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def average_gradients_(grads: Sequence[paddle.Tensor]) -> None:
    """Average ``grads`` over all processes in place with ONE collective, as ``paddle.DataParallel``'s
    reducer does for a group (concat, scale by 1/world, all-reduce sum, split): the same numbers.

    ``grads`` are the buffers a step produced (e.g. the flat gradient storage of the sampled path's
    units), so nothing is sent for parameters the step did not use."""
    world = get_world_size()
    if world == 1 or not grads:
        return
    with paddle.no_grad():
        if len(grads) == 1:
            fused = grads[0]
            fused.scale_(1. / world)
            dist.all_reduce(fused)
            return
        flat = paddle.concat([g.reshape([-1]) for g in grads])
        flat.scale_(1. / world)
        dist.all_reduce(flat)
        for g, part in zip(grads, paddle.split(flat, [int(g.size) for g in grads])):
            g.copy_(part.reshape(g.shape), False)
