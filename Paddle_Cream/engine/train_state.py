"""Search checkpoints: everything needed to continue exactly where a run stopped, written atomically."""
import glob
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


def load_train_state(path: str) -> Dict[str, Any]:
    try:
        state = load_paddle_file(path)
    except CheckpointFileError as e:
        raise UserError(str(e)) from None
    if not isinstance(state, dict) or 'search' not in state or 'state_dict' not in state:
        raise UserError(f'{path}: not a search checkpoint of tools/main.py train')
    return state


def find_resume_checkpoint(save_path: str, model: str, name: str = CHECKPOINT_NAME) -> Optional[str]:
    """The newest ``SAVE_PATH/*-<MODEL>/<name>`` (runs are dated MMDD-MODEL; ``name`` defaults to the
    search checkpoint)."""
    found = glob.glob(os.path.join(save_path, f'*-{model}', name))
    return max(found, key=os.path.getmtime) if found else None


def check_compatible(saved: Dict[str, Any], current: Dict[str, Any], path: str) -> None:
    """Refuse to resume from a checkpoint made with another search set-up."""
    for key, value in current.items():
        if saved.get(key) != value:
            raise UserError(f"{path} was made with {key}={saved.get(key)!r}, this config gives {value!r}: "
                            f"resume only with the config that made it")
