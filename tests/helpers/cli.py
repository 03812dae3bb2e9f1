"""Running ``tools/main.py`` from the tests: as a user does (a subprocess) or its ``main`` in-process."""
import csv
import glob
import importlib.util
import os
import subprocess
import sys
from typing import Callable, Dict, List, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_main(args: Sequence, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python tools/main.py ARGS`` from the repo root; stdout/stderr captured as text."""
    return subprocess.run([sys.executable, 'tools/main.py', *map(str, args)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout)


def tiny_search_args(data, out, *extra, epochs: int = 4) -> List[str]:
    """``train`` at tiny size on the digits folder ``data``: [1, 1, 2, 1, 1] layers (the FLOPs budget [0, 150] at
    224px), 32px, 7 iterations an epoch, the board from epoch 1, a meta update every 3 iterations; ``extra``
    KEY VALUE pairs after these override them."""
    return ['train', 'configs/demo/train.yaml', 'DATA_DIR', str(data), 'SAVE_PATH', str(out), 'EPOCHS', str(epochs),
            'DATASET.BATCH_SIZE', '16', 'SUPERNET.FLOPS_MINIMUM', '0', 'SUPERNET.FLOPS_MAXIMUM', '150',
            'SUPERNET.META_STA_EPOCH', '0', 'SUPERNET.UPDATE_ITER', '3', 'SUPERNET.POOL_SIZE', '3', 'WORKERS', '0',
            *map(str, extra)]


def load_main() -> Callable[[List[str]], int]:
    """``tools/main.py``'s ``main(argv) -> exit code``, for tests that read its stderr with capsys."""
    spec = importlib.util.spec_from_file_location('cream_main', os.path.join(REPO_ROOT, 'tools', 'main.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_dir(out, model: str) -> str:
    """The one ``<MMDD>-<model>`` run folder under ``out``."""
    dirs = glob.glob(os.path.join(glob.escape(str(out)), f'*-{glob.escape(model)}'))
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_rows(out, model: str) -> List[Dict[str, str]]:
    """The rows of that run's ``summary.csv``."""
    with open(os.path.join(run_dir(out, model), 'summary.csv')) as f:
        return list(csv.DictReader(f))


def load_bench(name: str):
    """The module ``bench/<name>.py`` (the bench scripts are files, not a package)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, 'bench', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
