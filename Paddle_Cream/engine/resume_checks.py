"""A checkpoint to resume, checked whole before the run folder exists: besides its weights (checked when it is
read), the optimizer state against the optimizer that will load it, the loss scaler's state, the epoch counter,
and for a search the board (paths of this hypernetwork, slices and soft labels of SUPERNET.SLICE images of
this size and class count) and the meta layer. Each mismatch is one UserError line naming the entry."""
import math
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from ..models.search_space import validate_path
from .errors import UserError

__all__ = ['check_counter', 'check_optimizer_state', 'check_scaler_state', 'check_board_state',
           'check_meta_state', 'MAX_EPOCH']

MAX_EPOCH = 1_000_000


def check_counter(value: Any, name: str, path: str) -> int:
    """``value`` as a non-negative integer counter (not a bool, a float or a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < MAX_EPOCH:
        raise UserError(f"{path}: its '{name}' is {value!r}, not an integer in 0..{MAX_EPOCH - 1}: the file is "
                        f"damaged")
    return int(value)


def check_optimizer_state(optimizer, state: Any, path: str) -> None:
    """The optimizer state fits ``optimizer`` (its own ``check_state_dict``: groups, indices, shapes)."""
    try:
        optimizer.check_state_dict(state)
    except ValueError as e:
        raise UserError(f'{path}: {e} (OPT, the network or the checkpoint differ)') from None


def check_scaler_state(scaler, state: Any, path: str) -> None:
    """The AMP loss scaler's saved state: a mapping whose loss scale is a finite positive number."""
    if scaler is None or not state:
        return
    scale = state.get('scale') if isinstance(state, Mapping) else None
    value = np.asarray(scale, dtype=np.float64).ravel() if scale is not None else np.array([])
    if value.size != 1 or not math.isfinite(value[0]) or value[0] <= 0:
        raise UserError(f"{path}: its loss scaler state has scale {scale!r}, not a finite positive number")


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _array(value: Any, shape: Sequence[int], what: str, path: str) -> None:
    array = np.asarray(value) if isinstance(value, np.ndarray) else None
    if array is None or list(array.shape) != list(shape) or array.dtype.kind != 'f' or not np.isfinite(array).all():
        found = 'not an array' if array is None else f'{array.dtype} {list(array.shape)}'
        raise UserError(f'{path}: {what} is {found}, this search needs finite float {list(shape)}')


def check_board_state(state: Any, sta_num: Sequence[int], slice_size: int, num_classes: int, image_size: int,
                      pool_size: int, path: str) -> None:
    """The board's saved entries: at most POOL_SIZE, each a path of the hypernetwork's layers with finite
    top-1 and FLOPs, ``SLICE`` input images of ``image_size`` and soft labels over ``num_classes``."""
    entries = state.get('entries') if isinstance(state, Mapping) else None
    if not isinstance(entries, list) or len(entries) > pool_size:
        raise UserError(f'{path}: its board holds {len(entries) if isinstance(entries, list) else entries!r} entries, '
                        f'SUPERNET.POOL_SIZE is {pool_size}')
    for i, entry in enumerate(entries):
        where = f'board entry {i}'
        if not isinstance(entry, Mapping):
            raise UserError(f'{path}: {where} is a {type(entry).__name__}, not an entry')
        arch = entry.get('path')
        try:
            fits = [len(stage) for stage in validate_path(arch)[1:-1]] == list(sta_num)
        except ValueError:
            fits = False
        if not fits:
            raise UserError(f'{path}: {where} has path {arch!r}, not a path of layers {list(sta_num)}')
        top1, flops = entry.get('top1'), entry.get('flops')
        numbers = all(_finite_number(v) for v in (top1, flops))
        if not numbers or not 0 <= top1 <= 100 or flops < 0:
            raise UserError(f'{path}: {where} has top-1 {top1!r} and FLOPs {flops!r}, not a percentage and a count')
        _array(entry.get('inputs'), [slice_size, 3, image_size, image_size], f'{where} inputs', path)
        _array(entry.get('soft_labels'), [slice_size, num_classes], f'{where} soft labels', path)


def check_meta_state(matcher, state: Optional[Dict[str, Any]], path: str) -> None:
    """The meta layer's saved weights have the keys and shapes of ``matcher`` (classes x SLICE inputs)."""
    if matcher is None:
        return
    expected = {k: list(v.shape) for k, v in matcher.state_dict().items()}
    found = {k: list(np.shape(v)) for k, v in state.items()} if isinstance(state, Mapping) else None
    if found != expected:
        raise UserError(f'{path}: its meta layer is {found}, this search needs {expected} (DATASET.NUM_CLASSES x '
                        f'SUPERNET.SLICE inputs)')
    for key, value in state.items():
        _array(np.asarray(value), expected[key], f'meta layer {key}', path)
