"""Write a result file atomically: a temporary file beside it, then a rename.

Readers (and a resumed run) see the previous complete file or the new complete one, never half of
one. The file gets the mode an ordinary ``open`` would give (``0o666`` minus the umask), not the
temporary file's private ``0o600``. A failure removes the temporary file and is reported as an
``OSError`` naming the destination (a full disk while writing says which file it was writing).
"""
import contextlib
import glob
import os
import tempfile
from typing import Iterator, List

from .run_lock import holding_if_free

__all__ = ['atomic_path', 'remove_stale_temp_files', 'TEMP_SUFFIX']

TEMP_SUFFIX = '.tmp'


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """``with atomic_path(dst) as tmp: write(tmp)``: ``tmp`` (``.<name>.<random>.tmp`` beside ``dst``)
    replaces ``dst`` when the block succeeds and is removed when it fails."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=TEMP_SUFFIX, dir=directory)
    os.close(fd)
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except OSError as e:
            if e.filename is None:  # e.g. ENOSPC from a write: say which file
                raise OSError(e.errno, e.strerror, path) from None
            raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temp_files(directory: str) -> List[str]:
    """Remove the temporary files :func:`atomic_path` left in ``directory`` when a process was killed
    while writing (a SIGKILL cannot clean up); returns what was removed. Nothing is removed while another
    live run holds the folder: its temporary files are saves in progress, not stale."""
    removed = []
    with holding_if_free(directory) as free:
        if not free:
            return removed
        for tmp in glob.glob(os.path.join(glob.escape(directory), '.*' + TEMP_SUFFIX)):
            if os.path.isfile(tmp):
                os.remove(tmp)
                removed.append(tmp)
    return removed
