"""What every loader worker process does first: die with its parent, seed its generators.

A worker whose parent was killed (SIGKILL, or SIGTERM without cleanup) is not stopped by
paddle: its own parent check leads to a normal exit, which waits for the result queue's
feeder thread, and nobody drains that queue any more; the workers then live on (hundreds
of MB each). On Linux the kernel kills the worker when its parent dies
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``); elsewhere a watchdog thread ends it with
``os._exit`` once the parent pid changes.
"""
import ctypes
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from typing import Optional

import numpy as np
import paddle

__all__ = ['WorkerInit', 'die_with_parent']

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_POLL_S = 0.5


def _set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False where that is unavailable."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _watch_parent(parent_pid: int, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    # not sys.exit: a normal exit would wait for queue feeder threads that the dead parent never drains
    os._exit(1)


def die_with_parent(parent_pid: int, use_prctl: bool = True, poll_s: float = _WATCHDOG_POLL_S) -> str:
    """End this process when ``parent_pid`` (its parent) dies; returns how: 'prctl' or 'watchdog'.

    ``use_prctl=False`` when the parent's *thread* that started this process may end
    before the parent does: Linux sends the parent-death signal when that thread exits.
    """
    armed = use_prctl and _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed: it will never come
        os._exit(1)
    if armed:
        return 'prctl'
    threading.Thread(target=_watch_parent, args=(parent_pid, poll_s), name='pimm-parent-watchdog',
                     daemon=True).start()
    return 'watchdog'


def _parent_pid() -> int:
    parent = multiprocessing.parent_process()  # the process that started this worker, even if it died since
    return parent.pid if parent is not None and parent.pid is not None else os.getppid()


def _seed_worker(worker_id: int, seed: int, rank: int) -> None:
    # the fallback stream for indices that are not SampleKeys (those reseed per sample, see sample_seed.py):
    # paddle draws a fresh base seed per loader iterator; rank and the user seed keep ranks apart
    info = paddle.io.get_worker_info()
    base_seed = int(info.seed) if info is not None else 0
    state = np.random.SeedSequence([seed, rank, worker_id, base_seed]).generate_state(4)
    random.seed(int(state[0]) << 32 | int(state[1]))
    np.random.seed(state)


class WorkerInit:
    """``worker_init_fn`` of :func:`~pimm.data.create_loader`: tie the worker to its parent, then seed it.

    :class:`~pimm.data.loader.ImageLoader` calls :meth:`before_start` in the parent just
    before paddle starts the workers, to note whether they are started from the main thread.
    """

    def __init__(self, seed: int = 0, rank: int = 0) -> None:
        self.seed, self.rank = int(seed), int(rank)
        self.from_main_thread = True
        self.mode: Optional[str] = None  # in a worker: 'prctl' or 'watchdog'

    def before_start(self) -> None:
        """Record the starting thread (the workers copy this object when they start)."""
        self.from_main_thread = threading.current_thread() is threading.main_thread()

    def __call__(self, worker_id: int) -> None:
        self.mode = die_with_parent(_parent_pid(), use_prctl=self.from_main_thread)
        _seed_worker(worker_id, self.seed, self.rank)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(seed={self.seed}, rank={self.rank})'
