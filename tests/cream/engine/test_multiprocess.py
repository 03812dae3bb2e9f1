"""Two real processes (gloo on CPU): the coalesced path all-reduce against DataParallel, and a resume
where only rank 0 can see the checkpoint."""
import json
import os
import subprocess
import sys

import pytest

from cli import REPO_ROOT, run_dir, run_main
from pimm.utils.checkpoint_io import load_paddle_file

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'dist_worker.py')


def _launch(tmp_path, *args):
    out = tmp_path / 'result.json'
    env = dict(os.environ)
    env.pop('CUDA_VISIBLE_DEVICES', None)
    proc = subprocess.run([sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', '2', '--log_dir',
                           str(tmp_path / 'logs'), WORKER, args[0], str(out), *map(str, args[1:])], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600, env=env)
    logs = ''.join(open(os.path.join(tmp_path, 'logs', f)).read()[-2000:] for f in os.listdir(tmp_path / 'logs')
                   if f.startswith('workerlog')) if (tmp_path / 'logs').exists() else ''
    assert proc.returncode == 0 and out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:] + logs
    with open(out) as f:
        return json.load(f)


def test_coalesced_path_all_reduce_gives_dataparallels_weights(tmp_path):
    """One all-reduce of the sampled path's gradients (nothing for the rest of the supernet) instead of
    DataParallel's find_unused_parameters reducer: after 6 steps on different per-rank batches, the same
    weights to the bit (2 ranks: halving is exact, so the order of the sum does not matter)."""
    ranks = _launch(tmp_path, 'allreduce')
    assert [r['rank'] for r in ranks] == [0, 1]
    assert all(r['max_abs_diff'] == 0. for r in ranks), ranks
    assert ranks[0]['weights'] == ranks[1]['weights']   # the trained weights agree across ranks
    assert ranks[0]['moved'] > 0   # the steps trained something
    assert ranks[0]['moved'] < ranks[0]['entries']  # and left the paths never sampled alone


@pytest.fixture(scope='module')
def checkpoint(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp('search')
    proc = run_main(['train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', out, 'EPOCHS', 2,
                     'DATASET.BATCH_SIZE', 16, 'SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 150,
                     'SUPERNET.META_STA_EPOCH', 0, 'SUPERNET.UPDATE_ITER', 3, 'SUPERNET.POOL_SIZE', 3, 'WORKERS', 0])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return os.path.join(run_dir(out, 'demo_search'), 'checkpoint-last.pdparams')


def test_resume_where_only_rank_0_sees_the_checkpoint(checkpoint, digits, tmp_path, monkeypatch):
    """Nodes without a shared folder: rank 0 decides what to resume and sends it; weights, optimizer, EMA,
    board and meta layer end identical on both ranks (they start from different random weights)."""
    state = load_paddle_file(checkpoint)
    monkeypatch.setenv('RESUME_IDENTITY', json.dumps(state['search']))
    ranks = _launch(tmp_path, 'resume', checkpoint, digits)
    assert [r['start_epoch'] for r in ranks] == [2, 2] and [r['rows'] for r in ranks] == [2, 2]
    assert ranks[0]['board_size'] == 3
    for key in ('weights', 'ema', 'optimizer', 'board', 'meta'):
        assert ranks[0][key] == ranks[1][key], key
