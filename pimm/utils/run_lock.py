"""One owner per run folder: an exclusive OS lock held for the life of the process that writes it.

The lock is ``flock`` on ``<folder>/.run.lock``: the kernel drops it when the process ends, however it
ends, so a killed run never blocks its own resume, while a second run started on the same folder is
refused with the holder's pid. A launcher that starts the ranks of a multi-process run holds the lock
itself and names its pid in :data:`HOLDER_ENV`; its rank 0 then writes the folder under that lock.
"""
import contextlib
import os
import socket
from typing import Dict, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded
    fcntl = None

__all__ = ['LOCK_NAME', 'HOLDER_ENV', 'RunFolderBusyError', 'hold_run_folder', 'holding_if_free',
           'release_run_folders']

LOCK_NAME = '.run.lock'
HOLDER_ENV = 'CREAM_RUN_FOLDER_HOLDER'   # pid of the launcher holding the lock for the ranks it started

_held: Dict[str, int] = {}   # real path of the folder -> the open lock file


class RunFolderBusyError(Exception):
    """Another live process holds the run folder (one line naming the folder and the holder)."""


def _holder(fd: int) -> str:
    """What the holder wrote into the lock file: ``<pid> on <host>``, or 'unknown'."""
    try:
        text = os.pread(fd, 256, 0).decode(errors='replace').split()
    except OSError:
        text = []
    return f'pid {text[0]} on {text[1]}' if len(text) >= 2 else 'pid unknown'


def _our_launcher(holder: str) -> bool:
    """Whether ``holder`` (as :func:`_holder` reads it) is the launcher of this multi-process run."""
    launcher = os.environ.get(HOLDER_ENV)
    return bool(launcher) and holder.startswith(f'pid {launcher} on {socket.gethostname()}')


def hold_run_folder(folder: str) -> None:
    """Take ``folder``'s lock for this process (``folder`` must exist); again for a folder already held is
    a no-op. Raises :class:`RunFolderBusyError` when another process holds it, unless that process is the
    launcher named in :data:`HOLDER_ENV`."""
    key = os.path.realpath(folder)
    if fcntl is None or key in _held:
        return
    fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        if _our_launcher(holder):
            return   # the launcher of this multi-process run holds it for us
        raise RunFolderBusyError(f"'{folder}' is in use by another run ({holder}): wait for it to end, or give "
                                 f"another MODEL or SAVE_PATH") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'{os.getpid()} {socket.gethostname()}\n'.encode(), 0)
    _held[key] = fd


@contextlib.contextmanager
def holding_if_free(folder: str) -> Iterator[bool]:
    """Inside: True while this process holds ``folder``'s lock (it already did, or took it for the inside only
    and gives it back after), False when another live process holds it or the lock cannot be opened. Work on
    a folder's files that must not race a live run (removing the temporary files a killed run left: a live
    run's are not stale) goes inside, when True."""
    if fcntl is None or os.path.realpath(folder) in _held:
        yield True
        return
    try:
        fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free = True
        except BlockingIOError:
            free = _our_launcher(_holder(fd))
        yield free
    finally:
        os.close(fd)


def release_run_folders() -> None:
    """Release every lock this process holds (the end of an in-process run; process exit does it too)."""
    while _held:
        _, fd = _held.popitem()
        os.close(fd)

