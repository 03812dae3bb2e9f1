"""Read and write Paddle checkpoint files safely (restricted unpickling, atomic writes)."""
import os
import pickle
import stat
from typing import Any, Union

import numpy as np
import paddle

from .atomic import atomic_path
from .safe_pickle import UnsafePickleError, restricted_loads

__all__ = ['CheckpointFileError', 'DEFAULT_MAX_BYTES', 'load_paddle_file', 'save_paddle_file']

PathLike = Union[str, os.PathLike]

_NAME_TABLE_KEY = 'StructuredToParameterName@@'
# the whole file is read into memory before it is unpickled: refuse anything bigger than this by default
DEFAULT_MAX_BYTES = 8 * 1024 ** 3


class CheckpointFileError(Exception):
    """A checkpoint file is missing, unreadable or not what it claims to be (one-line message)."""


def _tensors_from_tuples(obj: Any) -> Any:
    # mirror paddle.load: a (str, ndarray) pair is how paddle.save stored a tensor
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], np.ndarray):
        obj = obj[1]
    if isinstance(obj, np.ndarray):
        return obj.view(np.ndarray)  # not the unpickler's ndarray subclass
    if isinstance(obj, dict):
        return type(obj)((k, _tensors_from_tuples(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_tensors_from_tuples(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_tensors_from_tuples(v) for v in obj)
    return obj


def _size_text(n: int) -> str:
    return f'{n / 1024 ** 3:.1f} GiB' if n >= 1024 ** 3 else f'{n} bytes'


def _read_checked(path: str, max_bytes: int) -> bytes:
    """The file's bytes, once its stat shows a regular file of at most ``max_bytes`` (checked before reading)."""
    try:
        # O_NONBLOCK: opening a FIFO named like a checkpoint must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_BINARY', 0))
    except FileNotFoundError:
        raise CheckpointFileError(f'{path}: no such file') from None
    except IsADirectoryError:
        raise CheckpointFileError(f'{path}: is a directory, not a file') from None
    except OSError as e:
        raise CheckpointFileError(f'{path}: cannot open file ({e.strerror or e})') from None
    try:
        info = os.fstat(fd)  # the opened file's stat: no race with a rename between the check and the read
        if stat.S_ISDIR(info.st_mode):
            raise CheckpointFileError(f'{path}: is a directory, not a file')
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointFileError(f'{path}: not a regular file (a FIFO, socket or device)')
        if info.st_size > max_bytes:
            raise CheckpointFileError(f'{path}: {_size_text(info.st_size)} is over the {_size_text(max_bytes)} '
                                      f'limit of load_paddle_file (max_bytes); refusing to read it into memory')
        with os.fdopen(fd, 'rb') as f:
            fd = -1  # closed with f
            # read() allocates its whole argument first: ask for the size (+1 to see growth), not the limit
            data = f.read(info.st_size + 1)
    except OSError as e:
        raise CheckpointFileError(f'{path}: cannot read file ({e.strerror or e})') from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > info.st_size:
        raise CheckpointFileError(f'{path}: grew while being read (is it still being written?)')
    return data


def load_paddle_file(path: PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Load a file written by ``paddle.save`` (or :func:`save_paddle_file`) without trusting it.

    Tensors come back as numpy arrays; only numpy arrays, plain containers and
    OrderedDict can be built. The file is read whole, so one larger than ``max_bytes``
    (default 8 GiB) is refused before reading. Any problem raises :class:`CheckpointFileError`.
    """
    path = os.fspath(path)
    data = _read_checked(path, int(max_bytes))
    if not data:
        raise CheckpointFileError(f'{path}: empty file')
    try:
        obj = restricted_loads(data)
    except UnsafePickleError as e:
        raise CheckpointFileError(f'{path}: {e}') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise CheckpointFileError(f'{path}: not a readable Paddle checkpoint '
                                  f'(truncated or another format: {type(e).__name__}: {e})') from None
    if isinstance(obj, dict):  # paddle.save adds this name table to a saved state dict; paddle.load drops it
        obj.pop(_NAME_TABLE_KEY, None)
    try:
        return _tensors_from_tuples(obj)
    except RecursionError:
        raise CheckpointFileError(f'{path}: nested too deeply to be a checkpoint') from None


def save_paddle_file(obj: Any, path: PathLike) -> None:
    """``paddle.save`` to a temporary file beside ``path``, then rename (:func:`~pimm.utils.atomic.atomic_path`):
    never a half-written file, the file mode an ordinary file gets."""
    with atomic_path(os.fspath(path)) as tmp:
        paddle.save(obj, tmp)
