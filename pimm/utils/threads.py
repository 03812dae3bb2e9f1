"""CPU math threads of Paddle's dygraph.

``import paddle`` sets ``OMP_NUM_THREADS=1`` when it is unset, so dygraph training on CPU uses one
core for its matrix products however many the machine has (``FLAGS_paddle_num_threads`` is not
read there). ``core.set_num_threads`` changes it for the process."""
import os

import paddle

__all__ = ['available_cores', 'set_math_threads', 'use_all_cores']


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_math_threads(threads: int) -> int:
    """Let Paddle's CPU kernels use ``threads`` threads; returns it. No effect on GPU kernels."""
    threads = max(1, int(threads))
    paddle.base.core.set_num_threads(threads)
    return threads


def use_all_cores(processes: int = 1) -> int:
    """This process's share of the cores when ``processes`` run on the machine."""
    return set_math_threads(max(1, available_cores() // max(1, processes)))
