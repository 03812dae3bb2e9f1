"""The README's quickstart, as a user runs it: the demo search on CPU within 6 minutes, its supernet
learning (last epoch's train loss below 1.0) and its chosen path inside the budget with at least 70%
val top-1 (inherited weights, its own recomputed BN statistics)."""
import csv
import glob
import json
import os
import subprocess
import sys
import time

import yaml

from cli import REPO_ROOT

# the README's "about 4 minutes on 2 cores": 239-261 s measured alone on this machine; the limit leaves room for
# a shared machine's speed (+-15%, and 301 s was measured once in a full suite run)
LIMIT_SECONDS = 360
MIN_TOP1, MAX_LAST_LOSS = 70.0, 1.0


def test_quickstart_search_learns_within_six_minutes(tmp_path):
    # the README command, only with its data and outputs redirected into the test's folder
    start = time.time()
    proc = subprocess.run([sys.executable, 'tools/main.py', 'train', 'configs/demo/train.yaml',
                           'DATA_DIR', str(tmp_path / 'digits'), 'SAVE_PATH', str(tmp_path / 'output')],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=LIMIT_SECONDS + 60)
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert elapsed < LIMIT_SECONDS, f'quickstart took {elapsed:.0f}s'
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
    print(f"quickstart: {elapsed:.0f}s, arch {best['arch']}, {best['flops']:.1f} MFLOPs, top-1 {best['top1']:.1f}, "
          f"last train loss {float(last['train_loss']):.3f}")
