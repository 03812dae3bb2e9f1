"""Sharing the machine between pytest-xdist workers: a test that times things has it to itself.

Every test holds the machine shared while it runs (its fixtures' set-up and tear-down included); a test
marked ``whole_machine`` holds it alone, so no other test's load moves its timings. Two ``flock`` files
in a folder the whole run shares: the room (shared or exclusive) and a gate taken briefly before it,
which a waiting exclusive holder keeps closed so that shared holders cannot starve it.
"""
import contextlib
import fcntl
import os
from typing import Iterator

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
