"""Turn a PyTorch (timm-layout) state dict into a Paddle one for a given model, verified."""
import logging
from typing import Any, Dict, Mapping, Tuple

import numpy as np
import paddle.nn as nn

from pimm.models import check_state_dict, clean_state_dict

__all__ = ['ConversionError', 'select_weights', 'convert_state_dict']

_logger = logging.getLogger(__name__)

_BN_RENAMES = {'running_mean': '_mean', 'running_var': '_variance'}


class ConversionError(Exception):
    """The checkpoint cannot become the target model's weights (one-line message)."""


def select_weights(checkpoint: Any, weights: str = 'ema') -> Tuple[Dict[str, Any], str]:
    """The state dict to convert and where it came from.

    ``weights='ema'`` takes ``state_dict_ema`` (the published accuracies are the
    EMA weights) and falls back to ``state_dict`` when there is none;
    ``'raw'`` takes ``state_dict``. A bare state dict is taken as is.
    """
    if weights not in ('ema', 'raw'):
        raise ConversionError(f"--weights must be 'ema' or 'raw', got '{weights}'")
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'not a checkpoint: the file holds a {type(checkpoint).__name__}, not a dict')
    if weights == 'ema' and isinstance(checkpoint.get('state_dict_ema'), dict):
        return checkpoint['state_dict_ema'], 'state_dict_ema (EMA weights, the ones the paper evaluates)'
    if isinstance(checkpoint.get('state_dict'), dict):
        where = 'state_dict' if weights == 'raw' else 'state_dict (no state_dict_ema in the file)'
        return checkpoint['state_dict'], where
    if checkpoint and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in checkpoint.items()):
        return checkpoint, 'the file itself (a bare state dict)'
    keys = ', '.join(map(str, list(checkpoint)[:5]))
    raise ConversionError(f'not a checkpoint: no state_dict or state_dict_ema (top-level keys: {keys})')


def _linear_weight_keys(model: nn.Layer) -> set:
    return {f'{name}.weight' if name else 'weight' for name, layer in model.named_sublayers(include_self=True)
            if isinstance(layer, nn.Linear)}


def _paddle_key(key: str) -> str:
    prefix, _, leaf = key.rpartition('.')
    leaf = _BN_RENAMES.get(leaf, leaf)
    return f'{prefix}.{leaf}' if prefix else leaf


def convert_state_dict(state_dict: Mapping[str, Any], model: nn.Layer) -> Dict[str, np.ndarray]:
    """Rename and reshape a timm-layout state dict for ``model`` and check it fits exactly.

    Strips ``module.``, drops ``num_batches_tracked``, renames BN statistics to
    ``_mean``/``_variance``, transposes linear weights (PyTorch stores (out, in),
    Paddle (in, out)). Every model key must be filled with the model's shape and
    nothing may be left over; otherwise :class:`ConversionError` names the first
    offending keys.
    """
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise ConversionError(f'not a state dict of tensors: entry {bad[0]!r} is not a tensor')
    linear = _linear_weight_keys(model)
    out: Dict[str, np.ndarray] = {}
    for key, value in clean_state_dict(state_dict).items():
        if key.endswith('num_batches_tracked'):
            continue
        new_key = _paddle_key(key)
        if new_key in linear and value.ndim == 2:
            value = value.T
        if value.dtype != np.float32 and value.dtype.kind == 'f':
            value = value.astype(np.float32)
        out[new_key] = np.ascontiguousarray(value)
    try:
        check_state_dict(model, out)
    except KeyError as e:
        raise ConversionError(str(e.args[0])) from None
    return out
