"""The network a config asks for, and its weights from a .pth.tar or .pdparams file."""
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import paddle.nn as nn

from pimm.models import check_state_dict, load_state_dict
from pimm.utils import CheckpointFileError, load_paddle_file

from ..config.defaults import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from ..models import ChildNet, create_cream, published_models, validate_path
from .errors import UserError, require_file

__all__ = ['ModelInfo', 'build_model', 'load_weights', 'read_arch_file', 'require_weights', 'trained_arch_hint']

TORCH_SUFFIXES = ('.pth.tar', '.pth', '.tar', '.pt')
_MAX_ARCH_FILE_BYTES = 1 << 20   # a best_arch.json is a few hundred bytes
LATENCY_KEYS = ('latency_ms', 'latency_table')   # an evolve's prediction, carried on into a retrain's arch.json


@dataclass
class ModelInfo:
    """What the tools report about the network they built."""
    name: str                       # 'Cream-14' or 'ChildNet'
    path: List[List[int]]
    input_size: int
    paper: Dict[str, float] = field(default_factory=dict)   # paper_top1/top5 for published models
    latency: Dict[str, Any] = field(default_factory=dict)   # LATENCY_KEYS of the arch file, when it has them


def read_arch_file(path: str) -> Tuple[List[List[int]], Optional[int]]:
    """``(arch, resolution)`` of a ``best_arch.json`` written by a search or a retrain run's ``arch.json``,
    validated; ``resolution`` (the input size a search counted FLOPs at, or a retrain trained at) is None
    when the file has none."""
    record = _read_arch_record(path)
    return record['arch'], record.get('resolution')


def _carried_latency(record: Dict[str, Any]) -> Dict[str, Any]:
    """The predicted latency an arch file carries (``latency_ms`` and the table's record); none when it has
    no positive finite ``latency_ms`` (it describes the file, it is not a setting to refuse)."""
    ms = record.get('latency_ms')
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not (math.isfinite(ms) and ms > 0):
        return {}
    return {key: record[key] for key in LATENCY_KEYS if key in record}


def _read_arch_record(path: str) -> Dict[str, Any]:
    """The arch file's JSON object, its ``arch`` validated and ``resolution`` checked."""
    require_file(path, 'NET.ARCH_FILE')
    bad = f"NET.ARCH_FILE '{path}' is not a valid architecture file"
    expected = "expected the best_arch.json that train or evolve writes, or a retrain's arch.json"
    if os.path.getsize(path) > _MAX_ARCH_FILE_BYTES:
        raise UserError(f'{bad}: {os.path.getsize(path)} bytes, an architecture file has at most '
                        f'{_MAX_ARCH_FILE_BYTES}; {expected}')
    try:
        with open(path) as f:
            record = json.load(f)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise UserError(f'{bad}: not JSON ({type(e).__name__}); {expected}') from None
    if not isinstance(record, dict) or 'arch' not in record:
        raise UserError(f'{bad}: no "arch" entry; {expected}')
    try:
        arch = validate_path(record['arch'])
    except (ValueError, TypeError) as e:
        raise UserError(f'{bad}: {e}') from None
    resolution = record.get('resolution')
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                   or not MIN_IMAGE_SIZE <= resolution <= MAX_IMAGE_SIZE):
        raise UserError(f'{bad}: resolution must be an integer in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} (pixels), '
                        f'got {resolution!r}')
    return dict(record, arch=arch)


def build_model(cfg) -> (nn.Layer, ModelInfo):
    """``NET.SELECTION`` 14/43/114/287/481/604 for a published model, or -1 with
    ``NET.ARCH_FILE`` (a best_arch.json) or ``NET.INPUT_ARCH``; input size from
    ``DATASET.IMAGE_SIZE`` when set, else the model's own (an arch file's search resolution,
    224 for ``INPUT_ARCH``)."""
    net = cfg.NET
    kwargs = dict(num_classes=cfg.DATASET.NUM_CLASSES, drop_rate=net.DROPOUT_RATE,
                  drop_path_rate=net.DROP_PATH_RATE, global_pool=net.GP)
    table = published_models()
    selection = int(net.SELECTION)
    if selection == -1:
        try:
            record = _read_arch_record(net.ARCH_FILE) if net.ARCH_FILE else {'arch': validate_path(net.INPUT_ARCH)}
        except ValueError as e:
            raise UserError(f'NET.INPUT_ARCH is not a valid architecture: {e}') from None
        path = record['arch']
        size = cfg.DATASET.IMAGE_SIZE or record.get('resolution') or 224
        model = ChildNet(path, input_size=size, **kwargs)
        return model, ModelInfo('ChildNet', path, size, latency=_carried_latency(record))
    if str(selection) not in table:
        raise UserError(f"NET.SELECTION {selection} is not a published model; valid: "
                        f"{', '.join(table)} or -1 with NET.INPUT_ARCH / NET.ARCH_FILE")
    info = table[str(selection)]
    model = create_cream(str(selection), **kwargs)
    size = cfg.DATASET.IMAGE_SIZE or info['input_size']
    paper = {'top1': info['paper_top1'], 'top5': info['paper_top5']}
    return model, ModelInfo(f'Cream-{selection}', info['arch'], size, paper)


def require_weights(cfg, mode: str) -> None:
    """``UserError`` unless ``RESUME_PATH`` names an existing file (``mode`` needs weights)."""
    if not cfg.RESUME_PATH:
        raise UserError(f'{mode} needs weights: set RESUME_PATH to a .pth.tar or .pdparams file')
    require_file(cfg.RESUME_PATH, 'RESUME_PATH')


def trained_arch_hint(path: str) -> str:
    """For a retrain checkpoint that does not fit: how to build the network it holds."""
    try:
        args = load_paddle_file(path).get('args') or {}
        arch = validate_path(args['arch'])
    except Exception:  # not a retrain checkpoint, or no readable architecture in it: no hint
        return ''
    arch_file = os.path.join(os.path.dirname(os.path.abspath(path)), 'arch.json')
    how = f'NET.ARCH_FILE {arch_file}' if os.path.isfile(arch_file) else f"NET.INPUT_ARCH '{arch}'"
    return f'; it holds the network {arch}: NET.SELECTION -1 {how} builds it'


def require_finite_weights(state: Dict[str, Any], path: str) -> None:
    """Weights holding NaN or infinity give no result (a run that diverged saved them): one UserError line
    naming the first such tensor, before anything is evaluated, exported or written."""
    for name, value in state.items():
        array = np.asarray(value.numpy() if hasattr(value, 'numpy') else value)
        count = int((~np.isfinite(array)).sum()) if array.dtype.kind == 'f' else 0
        if count:
            raise UserError(f"{path}: '{name}' holds {count} NaN or infinite value(s) of {array.size}: these weights "
                            f"give no result (did the training diverge? take an earlier checkpoint)")


def load_weights(model: nn.Layer, path: str, use_ema: bool = True,
                 log: Optional[Callable[[str], None]] = None) -> None:
    """Load ``path`` into ``model``: an official ``.pth.tar`` converted in memory (torch not
    needed) or a Paddle ``.pdparams`` / training checkpoint; EMA weights preferred.
    Every key and shape must match (a wrong ``DATASET.NUM_CLASSES`` shows as the
    classifier's shape)."""
    from torch2paddle import CheckpointError, ConversionError, load_torch_weights
    require_file(path, 'RESUME_PATH')
    try:
        if path.endswith(TORCH_SUFFIXES):
            state = load_torch_weights(path, model, 'ema' if use_ema else 'raw', log)
        else:
            state = load_state_dict(path, use_ema)
            check_state_dict(model, state)
    except (CheckpointError, CheckpointFileError, ConversionError) as e:
        raise UserError(str(e)) from None
    except KeyError as e:
        raise UserError(f'{path}: {e.args[0]}{trained_arch_hint(path)}') from None
    require_finite_weights(state, path)
    model.set_state_dict(state)
    if log:
        log(f'loaded weights from {path}')
