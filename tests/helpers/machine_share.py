"""Sharing the machine between pytest-xdist workers: a test that times things has it to itself.

Every test holds the machine shared while it runs (its fixtures' set-up and tear-down included); a test
marked ``whole_machine`` holds it alone, so no other test's load moves its timings. Two ``flock`` files
in a folder the whole run shares: the room (shared or exclusive) and a gate taken briefly before it,
which a waiting exclusive holder keeps closed so that shared holders cannot starve it.

Each worker also runs on its own slice of the cores (CPU affinity, which the processes a test starts
inherit and our tools size their math threads by): two workers whose runs each took every core would
oversubscribe them. A ``whole_machine`` test gets every core back while it runs.
"""
import contextlib
import fcntl
import os
from typing import Iterator, List, Sequence

FOLDER_VARIABLE = 'PIMM_TESTS_MACHINE_SHARE'


@contextlib.contextmanager
def holding(folder: str, exclusive: bool) -> Iterator[None]:
    """Hold the machine in ``folder`` (shared, or alone when ``exclusive``) for the ``with`` block."""
    with open(os.path.join(folder, 'gate'), 'a') as gate, open(os.path.join(folder, 'room'), 'a') as room:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(room, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)


def share_of_cores(worker: int, workers: int, cores: Sequence[int]) -> List[int]:
    """The cores worker ``worker`` (0-based) of ``workers`` runs on: every ``workers``-th one from its own,
    so that every core is used; all of them when there are fewer cores than workers."""
    cores = sorted(cores)
    return cores if len(cores) < workers else cores[worker::workers]


@contextlib.contextmanager
def running_on(cores: Sequence[int]) -> Iterator[None]:
    """This thread (and what it starts) on ``cores`` for the ``with`` block, its earlier cores after."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
