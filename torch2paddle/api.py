"""The conversion behind ``python -m torch2paddle``: read, select, convert, verify, write."""
import os
from typing import Callable, Dict, Optional

import numpy as np
import paddle
import paddle.nn as nn

import pimm
from pimm.utils import format_complexity, model_complexity, save_paddle_file

from .convert import ConversionError, convert_state_dict, select_weights
from .torch_reader import load_torch_checkpoint

__all__ = ['load_torch_weights', 'check_destination', 'convert_checkpoint']


def load_torch_weights(src: str, model: nn.Layer, weights: str = 'ema',
                       log: Optional[Callable[[str], None]] = None) -> Dict[str, np.ndarray]:
    """Paddle state dict for ``model`` from the PyTorch checkpoint ``src`` (torch not needed).

    Raises ``CheckpointError`` for unreadable/hostile files and ``ConversionError``
    when the weights do not fit ``model`` exactly.
    """
    checkpoint = load_torch_checkpoint(src)
    state_dict, where = select_weights(checkpoint, weights)
    if log:
        log(f'taking {where}')
    try:
        return convert_state_dict(state_dict, model)
    except ConversionError as e:
        raise ConversionError(f'{src}: {e}') from None


def check_destination(src: str, dst: str, overwrite: bool = False) -> None:
    """Refuse (``ConversionError``) a ``dst`` that is ``src`` itself (the same file by any name or link),
    and an existing ``dst`` unless ``overwrite``: the PyTorch original and earlier conversions are kept."""
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise ConversionError(f'{dst} is the checkpoint being converted ({src}): give another DST')
    if os.path.isdir(dst):
        raise ConversionError(f'{dst} is a directory: give a file name for the .pdparams')
    if os.path.lexists(dst) and not overwrite:
        raise ConversionError(f'{dst} exists: give another DST, or --overwrite to replace it')


def convert_checkpoint(src: str, dst: str, model_name: str, weights: str = 'ema', num_classes: int = 1000,
                       log: Callable[[str], None] = print, overwrite: bool = False) -> Dict[str, object]:
    """Convert ``src`` (.pth.tar) into ``dst`` (.pdparams) for pimm model ``model_name``.

    ``dst`` is written atomically and only after the weights loaded into the model with every key and
    shape checked; it may not be ``src`` and, unless ``overwrite``, may not exist. Returns a summary dict.
    """
    check_destination(src, dst, overwrite)
    import Paddle_Cream  # noqa: F401  registers the cream_* models
    model = pimm.create_model(model_name, num_classes=num_classes)
    state_dict = load_torch_weights(src, model, weights, log)
    model.set_state_dict(state_dict)
    input_size = model.default_cfg['input_size'] if hasattr(model, 'default_cfg') else (3, 224, 224)
    macs, params = model_complexity(model, input_size)
    log(f'{model_name} @{input_size[-1]}px: {format_complexity(macs, params)}')
    save_paddle_file({k: paddle.to_tensor(v) for k, v in state_dict.items()}, dst)
    log(f'wrote {len(state_dict)} tensors to {os.fspath(dst)}')
    return dict(model=model_name, tensors=len(state_dict), macs=macs, params=params, dst=os.fspath(dst))
