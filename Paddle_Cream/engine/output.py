"""Run folders and logs: ``SAVE_PATH/<MMDD>-<MODEL>/`` with the merged config and a readable log."""
import json
import logging
import os
import sys
import tempfile
import time
from typing import Any, Optional

__all__ = ['create_output_dir', 'setup_logging', 'write_json_atomic', 'retrain_command']


def create_output_dir(save_path: str, model: str, config_dump: str, mode: str, write: bool = True) -> str:
    """``SAVE_PATH/<MMDD>-<MODEL>/`` with ``<mode>_config.yaml`` (written by the main process only)."""
    out_dir = os.path.join(save_path, f"{time.strftime('%m%d')}-{model}")
    if write:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f'{mode}_config.yaml'), 'w') as f:
            f.write(config_dump)
    return out_dir


def setup_logging(log_file: Optional[str], is_main: bool = True, name: str = 'cream') -> logging.Logger:
    """A logger printing to the console and, on the main process, to ``log_file``."""
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    fmt = logging.Formatter('%(asctime)s %(message)s', datefmt='%m-%d %H:%M:%S')
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if log_file and is_main:
        handler = logging.FileHandler(log_file)
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def write_json_atomic(obj: Any, path: str) -> None:
    """JSON to a temporary file beside ``path``, then rename: readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(obj, f, indent=2)
            f.write('\n')
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def retrain_command(cfg, arch_file: str) -> str:
    """The ``tools/main.py retrain`` line for a search's ``best_arch.json``: the demo's CPU recipe after a
    demo search, the paper's otherwise."""
    config = 'configs/demo/retrain.yaml' if cfg.DATASET.DEMO else 'configs/retrain/retrain.yaml'
    return f'python tools/main.py retrain {config} NET.SELECTION -1 NET.ARCH_FILE {arch_file} DATA_DIR {cfg.DATA_DIR}'
