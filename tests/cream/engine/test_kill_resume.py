"""Killed runs, with loader worker processes: no orphan lives on, the resume removes what a killed save
left, and the resumed run repeats an uninterrupted one (train and retrain, WORKERS 2), in a SAVE_PATH whose
name holds glob characters (taken literally by AUTO_RESUME's search and the temporary-file clean-up)."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cli import REPO_ROOT, read_rows, run_dir, run_main

SEARCH = ['train', 'configs/demo/train.yaml', 'EPOCHS', 3, 'DATASET.BATCH_SIZE', 16, 'SUPERNET.FLOPS_MINIMUM', 0,
          'SUPERNET.FLOPS_MAXIMUM', 150, 'SUPERNET.META_STA_EPOCH', 0, 'SUPERNET.UPDATE_ITER', 3,
          'SUPERNET.POOL_SIZE', 3, 'WORKERS', 2]
RETRAIN = ['retrain', 'configs/demo/retrain.yaml', 'EPOCHS', 3, 'DATASET.BATCH_SIZE', 16, 'WORKERS', 2,
           'AUGMENTATION.RE_PROB', 0.25]
COLUMNS = {'train': ('train_loss', 'train_top1', 'eval_loss', 'eval_top1', 'board_size', 'eval_path_flops'),
           'retrain': ('train_loss', 'eval_loss', 'eval_top1', 'eval_ema_top1')}
MODEL = {'train': 'demo_search', 'retrain': 'demo_retrain'}
CHECKPOINT = {'train': 'checkpoint-last.pdparams', 'retrain': 'last.pdparams'}


def _children(pid: int):
    """Processes whose parent is ``pid`` (its loader workers)."""
    found = []
    for stat in glob.glob('/proc/[0-9]*/stat'):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.split('/')[2]))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _args(mode, digits, out, *extra):
    return [*(SEARCH if mode == 'train' else RETRAIN), 'DATA_DIR', digits, 'SAVE_PATH', out, *extra]


@pytest.fixture(scope='module')
def uninterrupted(digits, tmp_path_factory):
    runs = {}
    for mode in ('train', 'retrain'):
        out = tmp_path_factory.mktemp(f'straight_{mode}')
        proc = run_main(_args(mode, digits, out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[mode] = out
    return runs


@pytest.mark.parametrize('mode', ['train', 'retrain'])
def test_sigkill_mid_epoch_leaves_no_orphan_and_resumes_exactly(mode, digits, uninterrupted, tmp_path):
    out = tmp_path / 'killed[v2] a?b*'   # glob characters: the resume must still find its own checkpoint
    proc = subprocess.Popen([sys.executable, 'tools/main.py', *map(str, _args(mode, digits, out))], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 600, []
    while time.time() < deadline and proc.poll() is None:   # epoch 0 saved, epoch 1 under way
        if glob.glob(os.path.join(glob.escape(str(out)), '*', CHECKPOINT[mode])):
            workers = _children(proc.pid)
            if workers:
                break
        time.sleep(0.1)
    assert proc.poll() is None and workers, 'the run ended (or had no workers) before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), 'loader workers outlived their killed parent'
    folder = run_dir(out, MODEL[mode])
    stale = os.path.join(folder, f'.{CHECKPOINT[mode]}.k1ll3d.tmp')  # what a kill during a save leaves
    with open(stale, 'wb') as f:
        f.write(b'half a checkpoint')
    resumed = run_main(_args(mode, digits, out, 'AUTO_RESUME', True))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed from' in resumed.stdout
    assert not glob.glob(os.path.join(glob.escape(folder), '.*.tmp'))
    straight, again = read_rows(uninterrupted[mode], MODEL[mode]), read_rows(out, MODEL[mode])
    assert len(again) == len(straight) == 3
    for key in COLUMNS[mode]:
        assert [r.get(key) for r in again] == [r.get(key) for r in straight], key
    if mode == 'train':
        with open(os.path.join(run_dir(uninterrupted[mode], MODEL[mode]), 'best_arch.json')) as f, \
                open(os.path.join(folder, 'best_arch.json')) as g:
            a, b = json.load(f), json.load(g)
        assert {k: a[k] for k in ('arch', 'flops', 'top1', 'board_top1')} == \
            {k: b[k] for k in ('arch', 'flops', 'top1', 'board_top1')}
