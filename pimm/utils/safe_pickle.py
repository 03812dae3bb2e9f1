"""A restricted unpickler: pickled files are hostile until proven otherwise (stdlib + numpy only).

Only globals on an explicit allow-list are constructed, most of them own safe re-implementations
(:data:`SAFE_GLOBALS`: plain containers, numeric numpy arrays, dtypes and scalars). Every other
global becomes an inert placeholder class: instances made without calling it (protocol 2+
``NEWOBJ``, ``copyreg._reconstructor``, then ``BUILD`` / item setting) load as plain data
(:class:`UnknownObject`), so a checkpoint that pickles, say, its training config still opens; but
*calling* a placeholder (what ``os.system``-style payloads do) is refused. No module named in
the file is ever imported. Used by :mod:`pimm.utils.checkpoint_io` and ``torch2paddle``; this
module must import neither paddle nor torch.
"""
import _compat_pickle
import io
import math
import pickle
import pickletools
import reprlib
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

__all__ = ['UnsafePickleError', 'UnknownObject', 'RestrictedUnpickler', 'SAFE_GLOBALS',
           'restricted_load', 'restricted_loads']

MAX_NDIM = 64

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
short_repr = _REPR.repr  # a bounded repr of anything a pickle made, for one-line messages


class UnsafePickleError(pickle.UnpicklingError):
    """Refused: the pickle asks for something outside the allow-list, or feeds it malformed data."""


class _PlaceholderMeta(type):
    """Metaclass of placeholders: refuses calls and class-attribute changes."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError(f'refusing to call {cls.module}.{cls.name}')

    def __setattr__(cls, key: str, value: Any) -> None:
        raise UnsafePickleError(f'refusing to modify {cls.module}.{cls.name}')

    def __delattr__(cls, key: str) -> None:
        raise UnsafePickleError(f'refusing to modify {cls.module}.{cls.name}')

    def __repr__(cls) -> str:
        return f'<placeholder class {cls.module}.{cls.name}>'


class UnknownObject(metaclass=_PlaceholderMeta):
    """Inert stand-in for an object whose class is not on the allow-list.

    Class attributes ``module``/``name`` name the original class; instances keep ``args``/``kwargs``
    (given to ``__new__``), ``state`` (BUILD state, usually the original ``__dict__``),
    ``dict_items`` and ``list_items`` (contents of dict/list subclasses).
    """

    module: str = '?'
    name: str = '?'

    def __new__(cls, *args: Any, **kwargs: Any) -> 'UnknownObject':
        self = object.__new__(cls)
        self.args, self.kwargs, self.state = args, kwargs, None
        self.dict_items: Dict[Any, Any] = {}
        self.list_items: list = []
        return self

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.dict_items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f'placeholder for {type(self).module}.{type(self).name} cannot be pickled again')

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        parts = [f'{type(self).module}.{type(self).name}']
        for label in ('args', 'kwargs', 'state', 'dict_items', 'list_items'):
            if getattr(self, label, None):
                parts.append(f'{label}={short_repr(getattr(self, label))}')
        return f"<UnknownObject {' '.join(parts)}>"


def placeholder_class(module: str, name: str) -> type:
    """A new inert placeholder class standing for ``module.name``."""
    label = name.rsplit('.', 1)[-1]
    return _PlaceholderMeta(label if label.isidentifier() else 'Placeholder', (UnknownObject,),
                            {'module': module, 'name': name})


def is_placeholder(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, UnknownObject)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_dims(value: Any, what: str) -> Tuple[int, ...]:
    """Validate a shape/stride: a short tuple of non-negative ints (``torch.Size`` too)."""
    if not isinstance(value, (tuple, list)) or len(value) > MAX_NDIM or \
            not all(is_int(v) and v >= 0 for v in value):
        raise UnsafePickleError(f'malformed {what} {short_repr(value)}')
    return tuple(value)


# ------------------------------------------------------------------------------------- numpy
# A pickled dtype is only ever an inert record (a placeholder instance): numpy's own
# dtype.__setstate__ lets the pickle turn a fresh float dtype into an object dtype, and arrays of
# it would then treat raw file bytes as object pointers. Scalars and arrays get a real dtype
# built from the record's plain numeric type code and byte order.
_NUMPY_CODES = {'b1', 'i1', 'u1', 'i2', 'u2', 'i4', 'u4', 'i8', 'u8', 'f2', 'f4', 'f8', 'c8', 'c16'}
_NUMPY_DTYPE = placeholder_class('numpy', 'dtype')


def _safe_dtype(code: Any, align: Any = False, copy: Any = False) -> UnknownObject:
    """Stand-in for ``numpy.dtype``: an inert record of a plain numeric type code."""
    if not isinstance(code, str) or code not in _NUMPY_CODES:
        raise UnsafePickleError(f'refusing numpy dtype {short_repr(code)}')
    return _NUMPY_DTYPE.__new__(_NUMPY_DTYPE, code)


def _numpy_dtype(record: Any) -> np.dtype:
    if type(record) is not _NUMPY_DTYPE:
        raise UnsafePickleError(f'refusing numpy data of dtype {short_repr(record)}')
    state = record.state  # BUILD state of the dtype: (version, byte order, ...)
    order = state[1] if isinstance(state, tuple) and len(state) > 1 and state[1] in ('<', '>') else '='
    return np.dtype(order + record.args[0])


def _raw_bytes(data: Any, nbytes: int, what: str) -> bytes:
    data = data.encode('latin1') if isinstance(data, str) else data  # Python 2 pickles: str
    if not isinstance(data, bytes) or len(data) != nbytes:
        raise UnsafePickleError(f'malformed {what}')
    return data


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for ``numpy.core.multiarray.scalar``: a numeric scalar from its raw bytes."""
    npdtype = _numpy_dtype(dtype)
    return np.frombuffer(_raw_bytes(data, npdtype.itemsize, f'numpy {npdtype} scalar'), dtype=npdtype)[0]


class _Array(np.ndarray):
    """What ``_reconstruct`` makes: its BUILD only takes raw bytes of a numeric dtype record.

    It pickles (``paddle.save`` again, say) as a plain ndarray.
    """

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 4:  # written by numpy < 1.x, without version
            state = (1, *state)
        if not isinstance(state, tuple) or len(state) != 5 or state[3] not in (False, True):
            raise UnsafePickleError(f'malformed numpy array state {short_repr(state)}')
        shape, dtype = check_dims(state[1], 'numpy array shape'), _numpy_dtype(state[2])
        data = _raw_bytes(state[4], math.prod(shape) * dtype.itemsize, f'numpy {dtype} array of shape {shape}')
        np.ndarray.__setstate__(self, (1, shape, dtype, bool(state[3]), data))

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.view(np.ndarray).__reduce_ex__(protocol)


def _safe_reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    """Stand-in for ``numpy.core.multiarray._reconstruct``: an empty array BUILD then fills."""
    if not is_placeholder(cls) or (cls.module, cls.name) != ('numpy', 'ndarray'):
        raise UnsafePickleError(f'refusing to rebuild an array of class {short_repr(cls)}')
    return np.ndarray.__new__(_Array, (0,), np.uint8)


# ------------------------------------------------------------------------------------- stdlib
def _safe_encode(obj: Any, encoding: Any = 'utf-8') -> bytes:
    """Stand-in for ``_codecs.encode`` as used by protocol-2 pickles of ``bytes``."""
    if not isinstance(obj, str) or encoding not in ('latin1', 'latin-1'):
        raise UnsafePickleError('refusing to call _codecs.encode with unexpected arguments')
    return obj.encode('latin1')


def _safe_bytes(*args: Any) -> bytes:
    """Stand-in for ``builtins.bytes`` as used by protocol-2 pickles of ``b''``: never ``bytes(huge)``."""
    if args:
        raise UnsafePickleError('refusing to call builtins.bytes with arguments')
    return b''


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> UnknownObject:
    """Stand-in for ``copyreg._reconstructor``: only builds inert placeholder instances."""
    if not is_placeholder(cls) or base not in (object, dict, list):
        raise UnsafePickleError(f'refusing to call copyreg._reconstructor for {short_repr(cls)}')
    obj = cls.__new__(cls)
    if base is dict and state:
        obj.dict_items.update(state)
    elif base is list and state:
        obj.list_items.extend(state)
    return obj


SAFE_GLOBALS: Dict[Tuple[str, str], Any] = {
    ('collections', 'OrderedDict'): OrderedDict,
    **{('builtins', t.__name__): t for t in (set, frozenset, dict, list, tuple, object, complex, slice)},
    ('copyreg', '_reconstructor'): _safe_reconstructor,
    ('_codecs', 'encode'): _safe_encode,
    ('builtins', 'bytes'): _safe_bytes,
    ('numpy', 'dtype'): _safe_dtype,
    **{(module, name): fn for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
       for name, fn in (('scalar', _safe_scalar), ('_reconstruct', _safe_reconstruct))},
}


# ------------------------------------------------------------------------------------- unpickling
class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come from ``allowed`` or become placeholder classes.

    ``persistent_load``, if given, resolves persistent ids (torch storages); without it they
    are refused. Python 2 names are renamed first, as the standard unpickler does.
    """

    def __init__(self, file: Any, allowed: Dict[Tuple[str, str], Any],
                 persistent_load: Optional[Callable[[Any], Any]] = None, encoding: str = 'latin1') -> None:
        super().__init__(file, encoding=encoding)
        self._allowed, self._persistent = allowed, persistent_load
        self._placeholders: Dict[Tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Never imports anything; unknown names become (per unpickler, shared) placeholders."""
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        if (module, name) not in self._placeholders:
            self._placeholders[(module, name)] = placeholder_class(module, name)
        return self._placeholders[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafePickleError(f'unexpected persistent id {short_repr(pid)}')
        return self._persistent(pid)


def _prescan(stream: io.BytesIO) -> None:
    """Walk one pickle's opcodes (executing nothing), then rewind.

    Rejects truncated or malformed data before CPython pre-allocates any declared length, and
    memo indices that would make it allocate a huge memo table (it grows the table to twice any
    PUT index it reads: one LONG_BINPUT 2**31 costs ~32 GB). A pickler numbers its memo entries
    0, 1, 2, ..., so an index never exceeds the count of opcodes before it.
    """
    start = stream.tell()
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(stream)):
            if opcode.name in ('PUT', 'BINPUT', 'LONG_BINPUT') and arg > count:
                raise UnsafePickleError(f'refusing memo index {arg} at opcode {count}')
    except ValueError as exc:
        raise pickle.UnpicklingError(f'corrupt pickle ({str(exc)[:200]})') from None
    stream.seek(start)


def restricted_load(stream: io.BytesIO, allowed: Dict[Tuple[str, str], Any],
                    persistent_load: Optional[Callable[[Any], Any]] = None, encoding: str = 'latin1') -> Any:
    """Unpickle the next pickle in ``stream`` (pre-scanned) with only ``allowed`` globals constructible."""
    _prescan(stream)
    return RestrictedUnpickler(stream, allowed, persistent_load, encoding).load()


def restricted_loads(data: bytes, allowed: Dict[Tuple[str, str], Any] = SAFE_GLOBALS) -> Any:
    """Unpickle ``data`` with only the ``allowed`` globals constructible."""
    return restricted_load(io.BytesIO(data), allowed)
