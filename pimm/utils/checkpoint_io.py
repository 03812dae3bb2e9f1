"""Read and write Paddle checkpoint files safely (restricted unpickling, atomic writes)."""
import os
import pickle
import tempfile
from typing import Any, Union

import numpy as np
import paddle

from .safe_pickle import UnsafePickleError, restricted_loads

__all__ = ['CheckpointFileError', 'load_paddle_file', 'save_paddle_file']

PathLike = Union[str, os.PathLike]

_NAME_TABLE_KEY = 'StructuredToParameterName@@'


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


def load_paddle_file(path: PathLike) -> Any:
    """Load a file written by ``paddle.save`` (or :func:`save_paddle_file`) without trusting it.

    Tensors come back as numpy arrays; only numpy arrays, plain containers and
    OrderedDict can be built. Any problem raises :class:`CheckpointFileError`.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointFileError(f'{path}: no such file')
    if not os.path.isfile(path):
        raise CheckpointFileError(f'{path}: not a file')
    with open(path, 'rb') as f:
        data = f.read()
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
    """``paddle.save`` to a temporary file beside ``path``, then rename: never a half-written file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=directory)
    os.close(fd)
    try:
        paddle.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
