"""Run folders and logs: ``SAVE_PATH/<MMDD>-<MODEL>/`` with the merged config and a readable log."""
import json
import logging
import math
import os
import sys
import time
from typing import Any, Optional

from pimm.utils.atomic import atomic_path
from pimm.utils.run_lock import RunFolderBusyError, hold_run_folder

from .errors import UserError
from .next_step import next_command, next_model

__all__ = ['create_output_dir', 'refuse_existing_run', 'setup_logging', 'escape_undecodable_output',
           'write_json_atomic', 'retrain_command']


def create_output_dir(save_path: str, model: str, config_dump: str, mode: str, write: bool = True) -> str:
    """``SAVE_PATH/<MMDD>-<MODEL>/`` with ``<mode>_config.yaml`` (written by the main process only, which
    first takes the folder's lock for its whole life: a second run on the folder is refused, naming the
    holder, before it writes anything)."""
    out_dir = os.path.join(save_path, f"{time.strftime('%m%d')}-{model}")
    if write:
        os.makedirs(out_dir, exist_ok=True)
        try:
            hold_run_folder(out_dir)
        except RunFolderBusyError as e:
            raise UserError(str(e)) from None
        with open(os.path.join(out_dir, f'{mode}_config.yaml'), 'w') as f:
            f.write(config_dump)
    return out_dir


def refuse_existing_run(save_path: str, model: str, mode: str, marker: str, resumable: bool = False) -> None:
    """A new run must not overwrite another's results: ``UserError`` when today's
    ``SAVE_PATH/<MMDD>-<MODEL>/`` already holds ``marker`` (the file a finished ``mode`` run leaves)."""
    run_dir = create_output_dir(save_path, model, '', mode, write=False)
    if os.path.isfile(os.path.join(run_dir, marker)):
        hint = 'AUTO_RESUME True continues it, ' if resumable else ''
        article = 'an' if mode[0] in 'aeiou' else 'a'
        raise UserError(f"'{run_dir}' already holds {article} {mode} run: {hint}another MODEL or SAVE_PATH starts a "
                        f"new one")


def setup_logging(log_file: Optional[str], is_main: bool = True, name: str = 'cream') -> logging.Logger:
    """A logger printing to the console and, on the main process, to ``log_file``."""
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    fmt = logging.Formatter('%(asctime)s %(message)s', datefmt='%m-%d %H:%M:%S')
    escape_undecodable_output()
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if log_file and is_main:
        handler = logging.FileHandler(log_file, errors='backslashreplace')   # names that are not UTF-8: escaped
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def escape_undecodable_output() -> None:
    """Print file names that are not valid UTF-8 (``os.listdir`` gives them as surrogate escapes) as
    backslash escapes instead of failing with UnicodeEncodeError: on the console and in error lines."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, 'reconfigure') and getattr(stream, 'errors', None) == 'strict':
            stream.reconfigure(errors='backslashreplace')


def _first_non_finite(obj: Any, where: str = '') -> Optional[str]:
    """Where in ``obj`` the first NaN or infinite number is (``a.b[2]``), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or 'the value'
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _first_non_finite(value, f'{where}[{key}]' if isinstance(key, int) else f'{where}.{key}'.lstrip('.'))
        if found:
            return found
    return None


def write_json_atomic(obj: Any, path: str) -> None:
    """Strict JSON (no NaN or Infinity, which other readers reject) to a temporary file beside ``path``,
    then rename: readers never see half a file. A non-finite number is a UserError naming where it is."""
    bad = _first_non_finite(obj)
    if bad:
        raise UserError(f'{path}: {bad} is not a finite number; a result that is not one is not written')
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        json.dump(obj, f, indent=2, allow_nan=False)
        f.write('\n')


def retrain_command(cfg, arch_file: str) -> str:
    """The ``tools/main.py retrain`` line for a search's ``best_arch.json``: the demo's CPU recipe after a
    demo search, the paper's otherwise; its own MODEL, so it never meets another retrain's folder."""
    config = 'configs/demo/retrain.yaml' if cfg.DATASET.DEMO else 'configs/retrain/retrain.yaml'
    return next_command('retrain', config, [
        ('NET.SELECTION', -1), ('NET.ARCH_FILE', arch_file), ('DATA_DIR', cfg.DATA_DIR),
        ('DATASET.NUM_CLASSES', cfg.DATASET.NUM_CLASSES), ('MODEL', next_model(cfg.MODEL, 'retrain'))])
