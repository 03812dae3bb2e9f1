"""Load Paddle checkpoints into models, checking every key and shape."""
import logging
import os
from typing import Any, Dict, Mapping, Optional

import numpy as np
import paddle
import paddle.nn as nn

from ..utils.checkpoint_io import CheckpointFileError, load_paddle_file
from ..utils.fused_storage import assign_in_place

__all__ = ['clean_state_dict', 'check_state_dict', 'assign_state_dict', 'select_state_dict', 'load_state_dict',
           'load_checkpoint', 'resume_checkpoint', 'restore_checkpoint']

_logger = logging.getLogger(__name__)


def clean_state_dict(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Drop the ``module.`` prefix DataParallel adds to every key."""
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state_dict.items()}


def _shape(v) -> tuple:
    return tuple(v.shape) if hasattr(v, 'shape') else ()


def check_state_dict(model: nn.Layer, state_dict: Mapping[str, Any]) -> None:
    """Raise ``KeyError`` naming the first missing/unexpected keys or mismatched shapes.

    ``set_state_dict`` silently skips missing keys, so nothing is loaded until this passes.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f'{k} {_shape(state_dict[k])} vs model {tuple(expected[k].shape)}'
              for k in expected if k in state_dict and _shape(state_dict[k]) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), first: {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), first: {', '.join(unexpected[:3])}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es), first: {'; '.join(shapes[:3])}")
    if problems:
        raise KeyError('checkpoint does not fit the model: ' + ' | '.join(problems))


def assign_state_dict(model: nn.Layer, state_dict: Mapping[str, Any]) -> None:
    """``model.set_state_dict`` that checks every key and shape first and writes each value into the
    existing tensor's memory on its own device: a model kept on the CPU stays there (``set_value`` of an
    array moves a tensor to the current device) and fused storage stays fused."""
    check_state_dict(model, state_dict)
    for key, tensor in model.state_dict().items():
        assign_in_place(tensor, state_dict[key])


def select_state_dict(checkpoint: Any, use_ema: bool = True, where: str = 'checkpoint') -> Dict[str, np.ndarray]:
    """The weights in a loaded checkpoint: ``state_dict_ema`` when asked and present, else ``state_dict``,
    else the checkpoint itself when it is a plain state dict (``where`` names it in errors)."""
    if not isinstance(checkpoint, dict):
        raise CheckpointFileError(f'{where}: expected a dict of weights, found {type(checkpoint).__name__}')
    state_dict = checkpoint
    for key in (['state_dict_ema'] if use_ema else []) + ['state_dict', 'model']:
        if isinstance(checkpoint.get(key), dict):
            state_dict = checkpoint[key]
            break
    if not all(isinstance(k, str) for k in state_dict):
        raise CheckpointFileError(f'{where}: not a state dict (non-string keys)')
    return clean_state_dict(state_dict)


def load_state_dict(checkpoint_path: str, use_ema: bool = True) -> Dict[str, np.ndarray]:
    """:func:`select_state_dict` of the Paddle checkpoint file ``checkpoint_path``."""
    return select_state_dict(load_paddle_file(checkpoint_path), use_ema, checkpoint_path)


def load_checkpoint(model: nn.Layer, checkpoint_path: str, use_ema: bool = True, strict: bool = True) -> None:
    """Load ``checkpoint_path`` into ``model``; with ``strict`` every key and shape must match."""
    state_dict = load_state_dict(checkpoint_path, use_ema)
    if strict:
        assign_state_dict(model, state_dict)
    else:
        model.set_state_dict(state_dict)
    _logger.info("loaded weights from '%s'", checkpoint_path)


def resume_checkpoint(model: nn.Layer, checkpoint_path: str, optimizer: Optional[paddle.optimizer.Optimizer] = None,
                      log_info: bool = True, loss_scaler: Any = None) -> Optional[int]:
    """Restore model (and optimizer, and the AMP ``loss_scaler`` when the checkpoint has its state) from a
    training checkpoint file; return the epoch to start from."""
    epoch = restore_checkpoint(model, load_paddle_file(checkpoint_path), optimizer, loss_scaler, checkpoint_path)
    if log_info:
        _logger.info("resumed from '%s' (next epoch %s)", os.fspath(checkpoint_path), epoch)
    return epoch


def restore_checkpoint(model: nn.Layer, checkpoint: Any, optimizer: Optional[paddle.optimizer.Optimizer] = None,
                       loss_scaler: Any = None, where: str = 'checkpoint') -> Optional[int]:
    """:func:`resume_checkpoint` from an already loaded (and possibly broadcast) checkpoint dict."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get('state_dict'), dict):
        assign_state_dict(model, select_state_dict(checkpoint, False, where))
        return None
    assign_state_dict(model, clean_state_dict(checkpoint['state_dict']))
    if optimizer is not None and isinstance(checkpoint.get('optimizer'), dict):
        optimizer.set_state_dict(checkpoint['optimizer'])
    if loss_scaler is not None and isinstance(checkpoint.get('amp_scaler'), dict) and checkpoint['amp_scaler']:
        loss_scaler.load_state_dict(checkpoint['amp_scaler'])
    epoch = checkpoint.get('epoch')
    if epoch is None:
        return None
    return int(epoch) + 1 if checkpoint.get('version', 1) > 1 else int(epoch)
