"""Read ``torch.save`` checkpoints safely, without importing torch (stdlib + numpy only).

Supports the zip archive of torch >= 1.6 and the older "legacy" stream of pickles
followed by raw storage bytes; tensors come back as independent numpy arrays.
Unpickling is code execution, so it goes through :mod:`pimm.utils.safe_pickle`: no module
named in the file is ever imported; globals resolve to an allow-list of own safe
re-implementations (here plus torch storages, dtypes and tensor rebuilders), or else to
inert placeholder classes (:class:`UnknownObject`) that refuse to be called.
"""
from __future__ import annotations

import io
import math
import os
import stat
import struct
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from pimm.utils.safe_pickle import SAFE_GLOBALS, UnknownObject, UnsafePickleError, check_dims, is_int, \
    is_placeholder, restricted_load, short_repr

__all__ = ["CheckpointError", "UnknownObject", "load_torch_checkpoint"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# Tensors may overlap (views, stride 0), so their total can exceed the file size, but
# never by more than this: max(MIN_TENSOR_BUDGET, TENSOR_BUDGET_FACTOR * file size) bytes.
MIN_TENSOR_BUDGET = 1 << 30
TENSOR_BUDGET_FACTOR = 8


class CheckpointError(Exception):
    """A checkpoint could not be read: missing, malformed, unsupported or hostile."""


class _Fail(CheckpointError):
    """Failure without the path; ``load_torch_checkpoint`` appends it."""


class _Elem(NamedTuple):
    """Element type of a storage: raw numpy code plus how to decode it."""
    code: str
    kind: str = "plain"  # "plain", "bf16", "bool" or "untyped"

    @property
    def itemsize(self) -> int:
        return np.dtype(self.code).itemsize

    @property
    def out_dtype(self) -> np.dtype:
        return np.dtype({"bf16": "float32", "bool": "bool"}.get(self.kind, self.code))


_BF16, _BOOL = _Elem("u2", "bf16"), _Elem("u1", "bool")
_STORAGES = {
    "FloatStorage": _Elem("f4"), "DoubleStorage": _Elem("f8"), "HalfStorage": _Elem("f2"),
    "BFloat16Storage": _BF16, "LongStorage": _Elem("i8"), "IntStorage": _Elem("i4"),
    "ShortStorage": _Elem("i2"), "CharStorage": _Elem("i1"), "ByteStorage": _Elem("u1"),
    "BoolStorage": _BOOL, "ComplexFloatStorage": _Elem("c8"),
    "ComplexDoubleStorage": _Elem("c16"), "UntypedStorage": _Elem("u1", "untyped"),
}
_TORCH_DTYPES = {
    "float32": _Elem("f4"), "float64": _Elem("f8"), "float16": _Elem("f2"), "bfloat16": _BF16,
    "int64": _Elem("i8"), "int32": _Elem("i4"), "int16": _Elem("i2"), "int8": _Elem("i1"),
    "uint8": _Elem("u1"), "uint16": _Elem("u2"), "uint32": _Elem("u4"), "uint64": _Elem("u8"),
    "bool": _BOOL, "complex64": _Elem("c8"), "complex128": _Elem("c16"),
}


class _Tag(NamedTuple):
    """Inert, uncallable value of a ``torch.<X>Storage`` or ``torch.<dtype>`` global."""
    qualname: str
    elem: _Elem
    is_storage: bool

    def __repr__(self) -> str:
        return self.qualname


class _StorageRef(NamedTuple):
    """A storage named in the pickle: ``numel`` elements of type ``elem`` under ``key``."""
    key: str
    elem: _Elem
    numel: int


# Deferred copy of a strided view: (output array, storage, offset, size, stride, element type).
_Job = tuple[np.ndarray, _StorageRef, int, tuple[int, ...], tuple[int, ...], _Elem]


_TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    **SAFE_GLOBALS,
    ("torch", "Size"): lambda dims=(): check_dims(dims, "torch.Size"),
    **{(module, name): _Tag(f"{module}.{name}", elem, True)
       for module in ("torch", "torch.cuda", "torch.storage") for name, elem in _STORAGES.items()},
    **{("torch", name): _Tag(f"torch.{name}", elem, False) for name, elem in _TORCH_DTYPES.items()},
}


class _TensorBuilder:
    """Collects storages and tensor views while unpickling; fills the tensors afterwards."""

    def __init__(self, max_bytes: int, legacy: bool) -> None:
        self.max_bytes, self.legacy = max_bytes, legacy
        self.budget = max(MIN_TENSOR_BUDGET, TENSOR_BUDGET_FACTOR * max_bytes)
        self.storages: dict[str, _StorageRef] = {}
        self.jobs: list[_Job] = []
        self.rebuilders: dict[str, Callable[..., Any]] = {
            "_rebuild_tensor": self.rebuild_tensor, "_rebuild_tensor_v2": self.rebuild_tensor,
            "_rebuild_tensor_v3": self.rebuild_tensor_v3, "_rebuild_parameter": self.rebuild_parameter,
            "_rebuild_parameter_with_state": self.rebuild_parameter,
        }

    def storage(self, pid: Any) -> Any:
        """Resolve a persistent id to a validated :class:`_StorageRef` (data comes later)."""
        if self.legacy and isinstance(pid, tuple) and len(pid) > 1 and pid[0] == "module" \
                and is_placeholder(pid[1]):
            return pid[1]  # legacy whole-module pickles also record the class source
        if not isinstance(pid, tuple) or len(pid) != (6 if self.legacy else 5) or pid[0] != "storage":
            raise _Fail(f"unsupported persistent id {short_repr(pid)}")
        stype, key, location, numel = pid[1:5]
        if not isinstance(stype, _Tag) or not stype.is_storage:
            raise _Fail(f"unsupported storage type {short_repr(stype)}")
        if not isinstance(key, str) or not isinstance(location, str) or not is_int(numel) or numel < 0:
            raise _Fail(f"malformed storage id {short_repr(pid)}")
        if numel * stype.elem.itemsize > self.max_bytes:
            raise _Fail(f"storage {key!r} declares {numel * stype.elem.itemsize} bytes "
                        f"but the file has only {self.max_bytes}")
        if self.legacy and pid[5] is not None:  # only written by torch < 0.4
            raise _Fail(f"storage views ({short_repr(pid[5])}) of pre-0.4 checkpoints are not supported")
        ref = _StorageRef(key, stype.elem, numel)
        if self.storages.setdefault(key, ref) != ref:
            raise _Fail(f"storage {key!r} is declared inconsistently")
        return ref

    def tensor(self, storage: Any, offset: Any, size: Any, stride: Any, elem: _Elem | None) -> np.ndarray:
        """Validate a strided view and return its (not yet filled) output array."""
        if not isinstance(storage, _StorageRef):
            raise _Fail(f"tensor built from {type(storage).__name__}, not from a storage")
        elem = storage.elem if elem is None else elem
        if elem != storage.elem and storage.elem.kind != "untyped":
            raise _Fail(f"tensor dtype does not match storage {storage.key!r}")
        size, stride = check_dims(size, "tensor size"), check_dims(stride, "tensor stride")
        if len(size) != len(stride) or not is_int(offset) or offset < 0:
            raise _Fail(f"malformed tensor view of storage {storage.key!r}")
        nbytes = math.prod(size) * elem.itemsize
        self.budget -= nbytes
        if self.budget < 0:
            raise _Fail(f"refusing absurd tensor shape {short_repr(size)} (tensors far larger than the file)")
        out = np.empty(size, dtype=elem.out_dtype)
        if nbytes:
            end = (offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1) * elem.itemsize
            if end > storage.numel * storage.elem.itemsize:
                raise _Fail(f"tensor view (offset {offset}, size {size}, stride {stride}) "
                            f"exceeds storage {storage.key!r}")
            self.jobs.append((out, storage, offset, size, stride, elem))
        return out

    def rebuild_tensor(self, storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None, metadata: Any = None) -> np.ndarray:
        """Stand-in for ``torch._utils._rebuild_tensor`` and ``_rebuild_tensor_v2``."""
        return self.tensor(storage, storage_offset, size, stride, None)

    def rebuild_tensor_v3(self, storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any,
                          backward_hooks: Any, dtype: Any, metadata: Any = None) -> np.ndarray:
        """Stand-in for ``torch._utils._rebuild_tensor_v3`` (untyped storage + dtype)."""
        if not isinstance(dtype, _Tag) or dtype.is_storage:
            raise _Fail(f"unsupported tensor dtype {short_repr(dtype)}")
        return self.tensor(storage, storage_offset, size, stride, dtype.elem)

    def rebuild_parameter(self, data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                          state: Any = None) -> np.ndarray:
        """Stand-in for ``_rebuild_parameter(_with_state)``: a parameter is just its data."""
        if not isinstance(data, np.ndarray):
            raise _Fail("parameter data is not a tensor")
        return data

    def fill(self, buffers: dict[str, Any], order: str) -> None:
        """Copy every recorded view out of the raw storage bytes (numpy re-checks the bounds)."""
        for out, ref, offset, size, stride, elem in self.jobs:
            raw = np.ndarray(size, dtype=np.dtype(elem.code).newbyteorder(order), buffer=buffers[ref.key],
                             offset=offset * elem.itemsize, strides=tuple(s * elem.itemsize for s in stride))
            if elem.kind == "bf16":
                out[...] = np.left_shift(raw.astype(np.uint32), 16).view(np.float32)
            elif elem.kind == "bool":
                np.not_equal(raw, 0, out=out)
            else:
                out[...] = raw


def _unpickle(stream: io.BytesIO, builder: _TensorBuilder | None) -> Any:
    """Unpickle the next pickle in ``stream``; tensors only where a builder collects them."""
    if builder is None:
        return restricted_load(stream, _TORCH_GLOBALS, encoding="utf-8")
    allowed = {**_TORCH_GLOBALS, **{("torch._utils", name): fn for name, fn in builder.rebuilders.items()}}
    return restricted_load(stream, allowed, builder.storage, encoding="utf-8")


@contextmanager
def _stage(problem: str) -> Iterator[None]:
    """Turn any unexpected exception into a one-line ``_Fail`` describing ``problem``."""
    try:
        yield
    except _Fail:
        raise
    except UnsafePickleError as exc:  # a refusal speaks for itself
        raise _Fail(str(exc)) from None
    except Exception as exc:  # every parser error here is a bad-input error
        raise _Fail(f"{problem} ({type(exc).__name__}: {str(exc)[:200]})") from None


def _load_zip(path: Path, file_size: int) -> Any:
    with _stage("corrupt or truncated zip archive"):
        archive = zipfile.ZipFile(path)
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise _Fail("not a PyTorch checkpoint (zip archive without exactly one <folder>/data.pkl)")
        prefix, order = pickles[0][: -len("data.pkl")], "<"
        if prefix + "byteorder" in names:
            with _stage("unreadable byteorder record"):
                byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise _Fail(f"unknown byte order {short_repr(byteorder)}")
            order = "<" if byteorder == "little" else ">"
        if archive.getinfo(pickles[0]).file_size > file_size:
            raise _Fail("data.pkl claims to be larger than the whole archive")
        builder = _TensorBuilder(file_size, legacy=False)
        with _stage("corrupt data.pkl"):
            obj = _unpickle(io.BytesIO(archive.read(pickles[0])), builder)
        buffers: dict[str, Any] = {}
        infos = {info.filename: info for info in archive.infolist()}
        with _stage("corrupt storage data"):
            for key, (_, elem, numel) in builder.storages.items():
                info = infos.get(f"{prefix}data/{key}")
                if info is None and numel:
                    raise _Fail(f"storage record data/{key} is missing")
                if info is not None and info.file_size != numel * elem.itemsize:
                    raise _Fail(f"storage {key!r} holds {info.file_size} bytes "
                                f"but {numel * elem.itemsize} are declared")
                buffers[key] = archive.read(info) if info is not None else b""
            builder.fill(buffers, order)
    return obj


def _load_legacy(data: bytes) -> Any:
    stream = io.BytesIO(data)
    with _stage("not a PyTorch checkpoint"):
        magic = _unpickle(stream, None)
    if not is_int(magic) or magic != LEGACY_MAGIC:
        raise _Fail("not a PyTorch checkpoint (neither a zip archive nor a legacy magic number)")
    with _stage("corrupt legacy header"):
        protocol, sys_info = _unpickle(stream, None), _unpickle(stream, None)
    if protocol != LEGACY_PROTOCOL or not isinstance(sys_info, dict):
        raise _Fail(f"unsupported legacy checkpoint (protocol {short_repr(protocol)})")
    if not sys_info.get("little_endian", True):
        raise _Fail("big-endian legacy checkpoints are not supported")
    builder = _TensorBuilder(len(data), legacy=True)
    with _stage("corrupt legacy checkpoint"):
        obj = _unpickle(stream, builder)
        keys = _unpickle(stream, None)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Fail("corrupt legacy checkpoint (malformed storage key list)")
    view, pos, buffers = memoryview(data), stream.tell(), {}
    for key in keys:  # each: int64 little-endian element count, then the raw bytes
        if key not in builder.storages or key in buffers:
            raise _Fail(f"corrupt legacy checkpoint (unexpected storage key {key!r})")
        _, elem, numel = builder.storages[key]
        if pos + 8 > len(data):
            raise _Fail(f"truncated file (size header of storage {key!r} is missing)")
        (header,) = struct.unpack_from("<q", data, pos)
        if header != numel:
            raise _Fail(f"storage {key!r} header says {header} elements but {numel} are declared")
        pos, nbytes = pos + 8, numel * elem.itemsize
        if pos + nbytes > len(data):
            raise _Fail(f"truncated file (storage {key!r} needs {nbytes} bytes, {len(data) - pos} left)")
        buffers[key], pos = view[pos:pos + nbytes], pos + nbytes
    missing = sorted(builder.storages.keys() - buffers.keys())
    if missing:
        raise _Fail(f"corrupt legacy checkpoint (no data for storages {missing[:5]})")
    with _stage("corrupt storage data"):
        builder.fill(buffers, "<")
    return obj


def _load(path: Path) -> Any:
    try:
        info = path.stat()
    except OSError as exc:
        raise _Fail("no such file" if isinstance(exc, FileNotFoundError)
                    else f"cannot access file ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _Fail("not a regular file")
    if info.st_size == 0:
        raise _Fail("empty file")
    with _stage("cannot read file"), open(path, "rb") as handle:
        data = handle.read(512)
        is_zip, is_tar = data[:4] in (b"PK\x03\x04", b"PK\x05\x06"), data[257:262] == b"ustar"
        if not (is_zip or is_tar):
            data += handle.read()
    if is_zip:
        return _load_zip(path, info.st_size)
    if is_tar:
        raise _Fail("old tar-format PyTorch checkpoints (torch < 0.4) are not supported")
    return _load_legacy(data)


def load_torch_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Load a ``torch.save`` file safely; tensors become C-contiguous numpy arrays.

    Objects of classes outside the allow-list become :class:`UnknownObject`
    placeholders.  Any problem raises :class:`CheckpointError` with one line naming the file.
    """
    path = Path(os.fspath(path))
    try:
        return _load(path)
    except _Fail as exc:
        message = str(exc)
    except Exception as exc:  # never leak raw parser errors
        message = f"unreadable checkpoint ({type(exc).__name__}: {str(exc)[:200]})"
    message = (message[:400] + "...") if len(message) > 400 else message
    message = f"{message} while loading {path}"
    raise CheckpointError(message.replace("\r", "\\r").replace("\n", "\\n"))
