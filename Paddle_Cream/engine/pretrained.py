"""``NET.PRETRAINED``: start a retrain from published (.pth.tar) or retrained (.pdparams) weights.

timm's ``pretrained`` + ``num_classes`` semantics: every tensor comes from the checkpoint, except the
classifier when the checkpoint has another number of classes than ``DATASET.NUM_CLASSES``; that one keeps
its fresh initialisation. Anything else that does not fit (another architecture) is refused, naming the
keys. Files are read only through the repo's restricted readers (torch2paddle's for PyTorch files,
pimm's ``load_paddle_file`` for Paddle ones), as ``test`` reads them.
"""
import copy
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import paddle.nn as nn

from pimm.models import check_state_dict, clean_state_dict, select_state_dict
from pimm.utils import CheckpointFileError, load_paddle_file
from pimm.utils.fused_storage import assign_in_place

from .errors import UserError, require_file
from .model_builder import TORCH_SUFFIXES, require_finite_weights, trained_arch_hint

__all__ = ['PretrainedReport', 'classifier_keys', 'load_pretrained']


@dataclass
class PretrainedReport:
    """What :func:`load_pretrained` took from the file and what it left as it was."""
    path: str
    source: str                         # the weights of the file that were read, e.g. 'state_dict_ema'
    loaded: List[str]                   # model keys filled from the checkpoint
    reset: List[str]                    # classifier keys left freshly initialised ([] when the classes agree)
    checkpoint_classes: Optional[int]   # the checkpoint classifier's size (None: it has none)
    num_classes: Optional[int]          # the model's (DATASET.NUM_CLASSES)

    def lines(self) -> List[str]:
        """The log lines: how many tensors were loaded, and which were reset and why."""
        lines = [f'NET.PRETRAINED: loaded {len(self.loaded)} tensors from {self.path} ({self.source})']
        if self.reset:
            lines.append(f'NET.PRETRAINED: its classifier has {self.checkpoint_classes} classes, DATASET.NUM_CLASSES '
                         f'is {self.num_classes}: {", ".join(self.reset)} freshly initialised, not loaded')
        return lines


def classifier_keys(model: nn.Layer) -> List[str]:
    """The state keys of ``model.get_classifier()`` (e.g. ``classifier.weight``, ``classifier.bias``)."""
    head = model.get_classifier() if hasattr(model, 'get_classifier') else None
    for name, layer in model.named_sublayers():
        if layer is head:
            return [f'{name}.{key}' for key in layer.state_dict()]
    return []


def _read(path: str, use_ema: bool) -> Tuple[Dict[str, Any], str, bool]:
    """``(state dict, which weights of the file, in PyTorch layout)``, read without trusting the file."""
    from torch2paddle import CheckpointError, ConversionError, load_torch_checkpoint, select_weights
    try:
        if path.endswith(TORCH_SUFFIXES):
            state, where = select_weights(load_torch_checkpoint(path), 'ema' if use_ema else 'raw')
            return clean_state_dict(state), where, True
        checkpoint = load_paddle_file(path)
        state = select_state_dict(checkpoint, use_ema, path)
    except (CheckpointError, CheckpointFileError, ConversionError) as e:
        raise UserError(f'NET.PRETRAINED: {e}') from None
    # the entry select_state_dict took, for the log (it prefers them in this order)
    names = (['state_dict_ema'] if use_ema else []) + ['state_dict', 'model']
    where = next((n for n in names if isinstance(checkpoint.get(n), dict)), 'the file itself (a bare state dict)')
    return state, where, False


def _checkpoint_classes(state: Dict[str, Any], keys: List[str], torch_layout: bool) -> Optional[int]:
    """Output size of the checkpoint's classifier: a Linear weight is (out, in) in PyTorch, (in, out) in Paddle."""
    weight = next((state[k] for k in keys if k.endswith('weight') and k in state), None)
    shape = tuple(getattr(weight, 'shape', ()))
    if len(shape) != 2:
        return None
    return int(shape[0] if torch_layout else shape[1])


def _like_checkpoint(model: nn.Layer, classes: Optional[int]) -> nn.Layer:
    """``model``, or a copy of it with a ``classes``-way classifier: the network the checkpoint must fit
    exactly, so the strict key and shape checks of ``test`` (and the PyTorch key mapping) apply unchanged."""
    if classes is None or classes == getattr(model, 'num_classes', classes) or not hasattr(model, 'reset_classifier'):
        return model
    shadow = copy.deepcopy(model)   # the model itself stays as built: its classifier is the fresh one
    shadow.reset_classifier(classes, getattr(getattr(model, 'global_pool', None), 'pool_type', 'avg'))
    return shadow


def load_pretrained(model: nn.Layer, path: str, use_ema: bool = True,
                    log: Optional[Callable[[str], None]] = None) -> PretrainedReport:
    """Fill ``model`` from the checkpoint ``path``: a published ``.pth.tar`` (converted in memory, torch not
    needed) or a ``.pdparams`` of retrain / torch2paddle; EMA weights preferred when the file has them.

    Only the classifier may differ, in its number of classes: then it is not loaded (it stays as
    initialised). Any other missing, unexpected or differently shaped key is a ``UserError`` naming the
    first ones, raised before ``model`` is touched."""
    from torch2paddle import ConversionError, convert_state_dict
    require_file(path, 'NET.PRETRAINED')
    state, where, torch_layout = _read(path, use_ema)
    head = classifier_keys(model)
    classes = _checkpoint_classes(state, head, torch_layout)
    target = _like_checkpoint(model, classes)
    try:
        if torch_layout:
            state = convert_state_dict(state, target)   # renames, transposes and checks like test's loading
        else:
            check_state_dict(target, state)
    except (ConversionError, KeyError) as e:
        hint = '' if torch_layout else trained_arch_hint(path)
        raise UserError(f"NET.PRETRAINED '{path}' is not a checkpoint of the configured network (NET.SELECTION, "
                        f"NET.ARCH_FILE or NET.INPUT_ARCH): {e.args[0]}{hint}") from None
    require_finite_weights(state, path)
    reset = head if target is not model else []
    loaded = [key for key in model.state_dict() if key not in reset]
    current = model.state_dict()
    for key in loaded:   # in place, on each tensor's own device (the model may already be on a GPU)
        assign_in_place(current[key], state[key])
    report = PretrainedReport(path, where, loaded, list(reset), classes, getattr(model, 'num_classes', None))
    if log:
        for line in report.lines():
            log(line)
    return report
