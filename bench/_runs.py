"""Running ``tools/main.py`` modes from the bench scripts exactly as a user would, each in its own process."""
import glob
import os
import subprocess
import sys
import time
from typing import Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, 'tools', 'main.py')


def run_folder(save_path: str, model: str) -> str:
    """The newest ``<MMDD>-model`` folder in ``save_path`` (the path taken literally, not as a pattern)."""
    found = sorted(glob.glob(os.path.join(glob.escape(save_path), f'*-{glob.escape(model)}')))
    if not found:
        sys.exit(f'error: no run folder {save_path}/<MMDD>-{model} after the run')
    return found[-1]


def run_mode(mode: str, config: str, model: str, save_path: str, overrides: Sequence[str], log,
             cores: Optional[Sequence[int]] = None) -> str:
    """``tools/main.py mode config MODEL model SAVE_PATH save_path overrides`` (on ``cores`` only, when
    given: the run then sizes its math threads to them), its output in ``save_path/model.out``; returns its
    run folder. A failed run ends the script with the output's tail."""
    cmd = [sys.executable, MAIN, mode, config, 'MODEL', model, 'SAVE_PATH', save_path, *map(str, overrides)]
    start = time.time()
    pin = None if cores is None else (lambda: os.sched_setaffinity(0, cores))
    with open(os.path.join(save_path, f'{model}.out'), 'w') as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=pin)
    if rc != 0:
        with open(os.path.join(save_path, f'{model}.out'), errors='replace') as f:
            tail = f.read()[-2000:]
        sys.exit(f'error: {" ".join(cmd)} exited with {rc}:\n{tail}')
    log(f'  {mode} {model}: {time.time() - start:.0f}s')
    return run_folder(save_path, model)
