"""A restricted unpickler: pickled files are hostile until proven otherwise.

Only globals on an explicit allow-list are constructed. Every other global
becomes an inert placeholder class: instances made without calling it
(protocol 2+ ``NEWOBJ``, then ``BUILD`` / item setting) load as plain data, so
a checkpoint that pickles, say, its training config object still opens; but
*calling* a placeholder (what ``os.system``-style payloads do) is refused.
No module named in the file is ever imported.
"""
import io
import pickle
import pickletools
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

__all__ = ['UnsafePickleError', 'UnknownObject', 'RestrictedUnpickler', 'restricted_loads', 'NUMPY_GLOBALS']


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list."""


class _PlaceholderMeta(type):
    def __call__(cls, *args, **kwargs):
        raise UnsafePickleError(f'refusing to call {cls.module}.{cls.qualname}')

    def __repr__(cls):
        return f"<placeholder class {cls.module}.{cls.qualname}>"


class UnknownObject(metaclass=_PlaceholderMeta):
    """Inert stand-in for an instance of a class that is not on the allow-list.

    ``state`` holds what the pickle passed to ``__setstate__``; ``items`` and
    ``list_items`` what it set as a mapping / appended as a list.
    """
    module = ''
    qualname = ''

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, 'state', None)
        object.__setattr__(obj, 'items', {})
        object.__setattr__(obj, 'list_items', [])
        object.__setattr__(obj, 'new_args', args)
        return obj

    def __setstate__(self, state):
        object.__setattr__(self, 'state', state)

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.list_items.append(value)

    def extend(self, values):
        self.list_items.extend(values)

    def __reduce_ex__(self, protocol):
        raise TypeError(f'placeholder for {self.module}.{self.qualname} cannot be pickled again')

    def __repr__(self):
        return f'<unknown {self.module}.{self.qualname} state={self.state!r} items={self.items!r}>'


def _placeholder(module: str, name: str) -> type:
    return _PlaceholderMeta(name.rsplit('.', 1)[-1], (UnknownObject,), {'module': module, 'qualname': name})


# numpy's own pickling of arrays, with only harmless dtypes (no objects: they would carry more pickles)
def _safe_dtype(spec, align=False, copy=False):
    dt = np.dtype(spec) if isinstance(spec, str) and len(spec) <= 8 else None
    if dt is None or dt.kind not in 'biufc' or dt.fields is not None or dt.subdtype is not None:
        raise UnsafePickleError(f'refusing numpy dtype {spec!r}')
    return dt


def _safe_reconstruct(cls, shape, typecode):
    if cls is not np.ndarray:
        raise UnsafePickleError(f'refusing to rebuild an array of class {cls!r}')
    return np.ndarray.__new__(np.ndarray, shape, np.dtype(np.uint8))


def _safe_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickleError('refusing a malformed numpy scalar')
    return np.frombuffer(data, dtype=dtype)[0]


NUMPY_GLOBALS: Dict[Tuple[str, str], Any] = {}
for _mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
    NUMPY_GLOBALS[(_mod, '_reconstruct')] = _safe_reconstruct
    NUMPY_GLOBALS[(_mod, 'scalar')] = _safe_scalar
NUMPY_GLOBALS[('numpy', 'ndarray')] = np.ndarray
NUMPY_GLOBALS[('numpy', 'dtype')] = _safe_dtype


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come from ``allowed`` or become placeholders.

    ``persistent_load``, if given, resolves persistent ids (torch storages).
    """

    def __init__(self, file, allowed: Dict[Tuple[str, str], Any],
                 persistent_load: Optional[Callable[[Any], Any]] = None):
        super().__init__(file, encoding='latin1')
        self._allowed = allowed
        self._persistent = persistent_load

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        return _placeholder(module, name)

    def persistent_load(self, pid):
        if self._persistent is None:
            raise UnsafePickleError(f'unexpected persistent id {pid!r}')
        return self._persistent(pid)


def _check_memo_indices(data: bytes) -> None:
    # The C unpickler grows its memo array to twice any PUT index it reads and zeroes it:
    # one crafted LONG_BINPUT 2**31 costs ~32 GB before the file is found bad. A pickler
    # numbers its memo entries 0, 1, 2, ..., so an index never exceeds the opcodes before it.
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(data)):
            if opcode.name in ('PUT', 'BINPUT', 'LONG_BINPUT') and arg > count:
                raise UnsafePickleError(f'refusing memo index {arg} at opcode {count}')
    except ValueError:
        pass  # malformed further on: the unpickler stops there too and reports it


def restricted_loads(data: bytes, allowed: Dict[Tuple[str, str], Any]) -> Any:
    """Unpickle ``data`` with only the ``allowed`` globals constructible."""
    _check_memo_indices(data)
    return RestrictedUnpickler(io.BytesIO(data), allowed).load()
