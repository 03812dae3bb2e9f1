"""Search checkpoints: everything needed to continue exactly where a run stopped, written atomically."""
import os
from typing import Any, Dict, Optional

from pimm.utils import CheckpointFileError, load_paddle_file, save_paddle_file

from .errors import UserError

__all__ = ['CHECKPOINT_NAME', 'save_train_state', 'load_train_state', 'find_resume_checkpoint', 'check_compatible']

CHECKPOINT_NAME = 'checkpoint-last.pdparams'


def save_train_state(out_dir: str, state: Dict[str, Any]) -> str:
    """Write the checkpoint (temp file + rename: an interrupted save keeps the previous one)."""
    path = os.path.join(out_dir, CHECKPOINT_NAME)
    save_paddle_file(state, path)
    return path


# what every search checkpoint holds, and the kind of each entry
_ENTRIES = {'epoch': int, 'search': dict, 'state_dict': dict, 'optimizer': dict}
_SEARCH = {'sta_num': list, 'resolution': int, 'image_size': int, 'num_classes': int, 'method': str}


def _check_structure(state: Any, path: str) -> None:
    """``UserError`` naming the first entry a search checkpoint lacks or holds in another form."""
    if not isinstance(state, dict) or 'search' not in state or 'state_dict' not in state:
        raise UserError(f'{path}: not a search checkpoint of tools/main.py train')
    for key, kind in _ENTRIES.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            found = type(state.get(key)).__name__ if key in state else 'missing'
            raise UserError(f"{path}: its '{key}' entry is {found}, a search checkpoint holds a {kind.__name__}: "
                            f"the file is damaged or not from train")
    for key, kind in _SEARCH.items():
        if not isinstance(state['search'].get(key), kind):
            raise UserError(f"{path}: its search set-up lacks '{key}': the file is damaged or not from train")
    if state['search']['method'] == 'cream':
        for key in ('board', 'meta_layer'):
            if not isinstance(state.get(key), dict):
                raise UserError(f"{path}: a Cream search checkpoint without its '{key}': the file is damaged")
    if not isinstance(state['optimizer'].get('state'), dict) or not isinstance(state['optimizer'].get('param_groups'),
                                                                                list):
        raise UserError(f"{path}: its optimizer state is malformed: the file is damaged or not from train")


def load_train_state(path: str) -> Dict[str, Any]:
    """A search checkpoint, read without trusting it, with every entry a resume needs checked."""
    try:
        state = load_paddle_file(path)
    except CheckpointFileError as e:
        raise UserError(str(e)) from None
    _check_structure(state, path)
    return state


def find_resume_checkpoint(save_path: str, model: Optional[str], name: str = CHECKPOINT_NAME) -> Optional[str]:
    """The newest ``SAVE_PATH/<MMDD>-<MODEL>/<name>`` (any MODEL when None; ``name`` defaults to the search
    checkpoint). Paths are taken literally: a folder named ``out[v2]`` or ``run*`` is that folder, not a
    pattern, and ``MODEL`` must be the whole name after the date (``1206-a-b`` is not a run of ``b``)."""
    try:
        entries = os.listdir(save_path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = []
    for entry in entries:
        date, dash, run_model = entry.partition('-')
        if dash and len(date) == 4 and date.isdigit() and (model is None or run_model == model):
            path = os.path.join(save_path, entry, name)
            if os.path.isfile(path):
                found.append(path)
    return max(found, key=os.path.getmtime) if found else None


def check_compatible(saved: Dict[str, Any], current: Dict[str, Any], path: str) -> None:
    """Refuse to resume from a checkpoint made with another search set-up."""
    for key, value in current.items():
        if saved.get(key) != value:
            raise UserError(f"{path} was made with {key}={saved.get(key)!r}, this config gives {value!r}: "
                            f"resume only with the config that made it")
