"""The README's quickstart, as a user runs it: the demo search on CPU in the README's time, its supernet
learning (last epoch's train loss below 1.0) and its chosen path inside the budget with at least 70%
val top-1 (inherited weights, its own recomputed BN statistics)."""
import csv
import glob
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from cli import REPO_ROOT
from machine_speed import training_seconds

# The README's time (4 to 6 1/2 minutes on 2 cores) is checked as a ratio to the machine's speed taken beside it
# (machine_speed.training_seconds, before and after), not in seconds: the shared machine's speed moved a fixed
# limit's margin away (239-261 s alone on a quiet day, 364 s alone and 385 s in a CI run on a slow one, where the
# same code's 3-epoch search was as slow as the previous release's). Measured: 37.1 x 9.8 s alone on the slow day.
# The limit leaves 35% for load; a quickstart twice as slow fails.
pytestmark = pytest.mark.whole_machine   # timed: no other test beside it under pytest-xdist
LIMIT_SECONDS = 900                     # a hang, whatever the machine
LIMIT_RATIO = 50.0
MIN_TOP1, MAX_LAST_LOSS = 70.0, 1.0


def test_quickstart_search_learns_in_the_readmes_time(tmp_path):
    # the README command, only with its data and outputs redirected into the test's folder
    before = training_seconds()
    start = time.time()
    proc = subprocess.run([sys.executable, 'tools/main.py', 'train', 'configs/demo/train.yaml',
                           'DATA_DIR', str(tmp_path / 'digits'), 'SAVE_PATH', str(tmp_path / 'output')],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=LIMIT_SECONDS)
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    speed = (before + training_seconds()) / 2
    assert elapsed / speed < LIMIT_RATIO, (f'quickstart took {elapsed:.0f}s, {elapsed / speed:.1f} times the '
                                           f'fixed training work ({speed:.1f}s now)')
    assert 'wrote the digits demo dataset' in proc.stdout
    assert 'chosen architecture' in proc.stdout and 'retrain it:' in proc.stdout
    with open(os.path.join(REPO_ROOT, 'configs', 'demo', 'train.yaml')) as f:
        supernet = yaml.safe_load(f)['SUPERNET']
    best_file, = glob.glob(str(tmp_path / 'output' / '*' / 'best_arch.json'))
    with open(best_file) as f:
        best = json.load(f)
    assert supernet['FLOPS_MINIMUM'] <= best['flops'] <= supernet['FLOPS_MAXIMUM']
    assert MIN_TOP1 <= best['top1'] <= 100.0, best
    with open(os.path.join(os.path.dirname(best_file), 'summary.csv')) as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last['train_loss']) < MAX_LAST_LOSS, last
    print(f"quickstart: {elapsed:.0f}s ({elapsed / speed:.1f} x {speed:.1f}s), arch {best['arch']}, "
          f"{best['flops']:.1f} MFLOPs, top-1 {best['top1']:.1f}, "
          f"last train loss {float(last['train_loss']):.3f}")
