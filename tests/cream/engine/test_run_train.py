"""``tools/main.py train`` at tiny size: outputs, exact resume after a kill, 2 processes, bad input."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cli import REPO_ROOT, read_rows, run_dir, run_main, tiny_search_args as tiny_args

EPOCHS = 4   # tiny_args' epochs
MODEL = 'demo_search'


@pytest.fixture(scope='module')
def uninterrupted(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp('full')
    proc = run_main(tiny_args(digits, out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def test_search_writes_its_results(uninterrupted):
    out, proc = uninterrupted
    d = run_dir(out, MODEL)
    for name in ('best_arch.json', 'board.json', 'board.png', 'curves.png', 'summary.csv', 'train.log',
                 'checkpoint-last.pdparams', 'train_config.yaml'):
        assert os.path.exists(os.path.join(d, name)), name
    with open(os.path.join(d, 'best_arch.json')) as f:
        best = json.load(f)
    assert len(best['arch']) == 7 and best['arch'][0] == [0] and best['arch'][-1] == [0]
    assert [len(s) for s in best['arch'][1:-1]] == [1, 1, 2, 1, 1]
    assert 0 <= best['flops'] <= 150
    assert 'NET.ARCH_FILE' in best['retrain_command']
    with open(os.path.join(d, 'board.json')) as f:
        board = json.load(f)
    assert 1 <= len(board) <= 3 and board[0]['arch'] == best['arch']
    assert [e['top1'] for e in board] == sorted((e['top1'] for e in board), reverse=True)
    assert len(read_rows(out, MODEL)) == EPOCHS
    assert 'meta-matching update' in proc.stdout
    assert 'chosen architecture' in proc.stdout
    from Paddle_Cream.search.behaviour import SWITCHES   # every switch's corrected value (column 0)
    assert best['behaviour'] == {'FOLLOW': 'corrected', **{key: values[0] for key, values in SWITCHES.items()}}
    assert 'search behaviour: corrected (MATCH_WEIGHT teacher' in proc.stdout


def test_a_search_that_follows_the_official_code_runs_and_says_so(digits, tmp_path):
    """SUPERNET.FOLLOW official end to end (one switch set back by its own key): the log's first lines and
    best_arch.json name every switch's value."""
    proc = run_main(tiny_args(digits, tmp_path, 'SUPERNET.FOLLOW', 'official', 'SUPERNET.LR_RULE', 'linear',
                              epochs=2))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(os.path.join(run_dir(tmp_path, MODEL), 'best_arch.json')) as f:
        best = json.load(f)
    from Paddle_Cream.search.behaviour import SWITCHES   # every switch's official value, LR_RULE set back
    assert best['behaviour'] == {'FOLLOW': 'official', **{key: values[1] for key, values in SWITCHES.items()},
                                 'LR_RULE': 'linear'}
    assert 'search behaviour: mixed (MATCH_WEIGHT last_entry, OFF_PATH momentum' in proc.stdout
    assert 'meta-matching update' in proc.stdout and 'chosen architecture' in proc.stdout
    checkpoint = os.path.join(run_dir(tmp_path, MODEL), 'checkpoint-last.pdparams')   # with the meta optimizer's
    resumed = run_main(tiny_args(digits, tmp_path, 'SUPERNET.FOLLOW', 'official', 'SUPERNET.LR_RULE', 'linear',
                                 'RESUME_PATH', checkpoint, epochs=3))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert 'resumed from' in resumed.stdout and 'epoch 2:' in resumed.stdout


def test_the_chosen_paths_top1_uses_its_own_bn_statistics(digits, uninterrupted):
    """best_arch.json's top1 is what an independent SPOS-style scoring of the saved supernet gives (BN
    statistics recomputed for the path); the running-statistics figure is kept beside it, named."""
    from Paddle_Cream.config import load_config
    from Paddle_Cream.engine.path_eval import PathEvaluator, fixed_loaders, load_search_checkpoint
    out, proc = uninterrupted
    d = run_dir(out, MODEL)
    with open(os.path.join(d, 'best_arch.json')) as f:
        best = json.load(f)
    checkpoint = os.path.join(d, 'checkpoint-last.pdparams')
    cfg = load_config(os.path.join(REPO_ROOT, 'configs', 'demo', 'train.yaml'), tiny_args(digits, out)[2:])
    hypernet, ident = load_search_checkpoint(cfg, checkpoint)
    bn_loader, val_loader = fixed_loaders(cfg, ident['image_size'])  # the whole val split at this size
    assert len(val_loader.dataset) == sum(len(files) for _, _, files in os.walk(os.path.join(digits, 'val')))
    assert PathEvaluator(hypernet, bn_loader, val_loader).score(best['arch'])['top1'] == pytest.approx(best['top1'])
    assert 0.0 <= best['top1_running_bn'] <= 100.0 and 'top5_running_bn' in best
    assert 'recomputed BN statistics' in proc.stdout and "with the supernet's running ones" in proc.stdout


def test_killed_run_resumes_to_the_same_board_and_losses(digits, uninterrupted, tmp_path):
    full_out, _ = uninterrupted
    out = tmp_path / 'resumed'
    proc = subprocess.Popen([sys.executable, 'tools/main.py', *map(str, tiny_args(digits, out))], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:   # kill it once epoch 1 is checkpointed
        if glob.glob(str(out / '*' / 'summary.csv')) and len(read_rows(out, MODEL)) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(read_rows(out, MODEL)) < EPOCHS, 'the run ended before it could be interrupted'
    resumed = run_main(tiny_args(digits, out, 'AUTO_RESUME', 'True'))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed from' in resumed.stdout
    with open(os.path.join(run_dir(full_out, MODEL), 'board.json')) as f, \
            open(os.path.join(run_dir(out, MODEL), 'board.json')) as g:
        assert json.load(f) == json.load(g)
    full, again = read_rows(full_out, MODEL), read_rows(out, MODEL)
    for key in ('train_loss', 'train_top1', 'eval_loss', 'eval_top1', 'board_size'):
        assert [r[key] for r in full] == [r[key] for r in again], key


def test_two_processes_hold_identical_boards(digits, tmp_path):
    out = tmp_path / 'two'
    proc = run_main(tiny_args(digits, out, 'NUM_GPU', 2, 'EPOCHS', 2))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    logs = sorted(glob.glob(os.path.join(run_dir(out, MODEL), 'train_launch_logs', 'workerlog.*')))
    assert len(logs) == 2
    digests = []
    for log in logs:
        with open(log) as f:
            digests.append([line.split('board digest ')[1].strip() for line in f if 'board digest' in line])
    assert digests[0] and digests[0] == digests[1]
    assert os.path.exists(os.path.join(run_dir(out, MODEL), 'best_arch.json'))


@pytest.mark.parametrize('extra, words', [
    (['SUPERNET.FLOPS_MINIMUM', 600, 'SUPERNET.FLOPS_MAXIMUM', 900], ['[600, 900]', 'impossible']),
    (['SUPERNET.PICK_METHD', 'meta'], ['SUPERNET.PICK_METHOD']),
    (['SUPERNET.HOW_TO_PROB', 'uniform'], ['HOW_TO_PROB', 'pre_prob']),
    (['DATASET.DEMO', "''", 'DATA_DIR', '/nonexistent/imagenet'], ['/nonexistent/imagenet/train']),
    (['BATCHNORM.SYNC_BN', True, 'NUM_GPU', 2], ['SYNC_BN needs GPUs']),
    (['SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 5], ['[0, 5]', '6.6 to', 'none within the budget']),
    (['SUPERNET.RESUNIT', True], ['SUPERNET.RESUNIT', 'search space']),
    (['BATCHNORM.BN_EPS', 0.001], ['BN_EPS are not used']),
    (['AMP', True], ['AMP needs a GPU']),
])
def test_bad_input_is_one_line(digits, tmp_path, extra, words):
    proc = run_main(tiny_args(digits, tmp_path / 'out', *extra))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip() and 'it/s' not in line]
    assert len(lines) == 1 and lines[0].startswith('error:'), proc.stderr
    for w in words:
        assert w in lines[0]


def test_resume_from_another_config_is_refused(digits, uninterrupted, tmp_path):
    full_out, _ = uninterrupted
    ckpt = os.path.join(run_dir(full_out, MODEL), 'checkpoint-last.pdparams')
    proc = run_main(tiny_args(digits, tmp_path / 'out', 'SUPERNET.FLOPS_MAXIMUM', 200, 'RESUME_PATH', ckpt))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip() and 'it/s' not in line]
    assert len(lines) == 1 and 'sta_num' in lines[0], proc.stderr


class _CannedStep:
    """SupernetStep's interface to the epoch loop, returning iterations with the given losses (one late)."""

    def __init__(self, losses, scaler):
        from Paddle_Cream.search.supernet_step import StepResult
        self.results = [StepResult(loss=v, top1=50., path=[[0]], flops=1., m=None, meta=None, admitted=False,
                                   teacher=None) for v in losses]
        self.scaler, self.board, self.pending = scaler, None, None
        self.optimizer = type('Optimizer', (), {'get_lr': lambda self: 0.1})()

    def __call__(self, images, targets, epoch, iteration, lr, batch_idx=None):
        previous, self.pending = self.pending, self.results[iteration]
        return previous

    def finish(self):
        previous, self.pending = self.pending, None
        return previous


@pytest.mark.parametrize('amp', [False, True], ids=['float32', 'amp'])
def test_a_non_finite_search_loss_stops_the_run_unless_the_loss_scaler_skipped_it(amp):
    """Under AMP a non-finite loss is an overflowed step the scaler skipped: the epoch goes on, its mean over the
    finite iterations; without AMP, or once the scale is down to its floor of 1, the run stops."""
    import paddle

    from fake_gpu import built_as_on_gpu
    from Paddle_Cream.engine import UserError
    from Paddle_Cream.engine.run_train import _train_epoch
    from pimm.utils.amp import GradScaler
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024) if amp else None
    scheduler = type('Scheduler', (), {'step_update': lambda self, n: None})()
    batches = [(None, None)] * 4

    def epoch():
        return _train_epoch(_CannedStep([1., float('inf'), 2., 3.], scaler), batches, 0, 0, scheduler, print,
                            False, '')
    if not amp:
        with pytest.raises(UserError, match='epoch 0, iteration 2: the training loss is inf'):
            epoch()
        return
    metrics, iterations = epoch()
    assert metrics['loss'] == 2. and iterations == 4
    scaler._scale.set_value(paddle.to_tensor([1.]))
    with pytest.raises(UserError, match='iteration 2: the training loss is inf'):
        epoch()


def test_the_epoch_bar_ends_on_the_epochs_mean_loss_and_top1(monkeypatch):
    """The supernet's epoch bar shows the epoch's means so far, and its last display includes the last
    iteration (settled after the loop): it used to show one iteration's loss, and not the last one."""
    import progress
    import Paddle_Cream.engine.run_train as run_train
    bars = progress.spy_on_bars(monkeypatch, run_train)
    scheduler = type('Scheduler', (), {'step_update': lambda self, n: None})()
    metrics, _ = run_train._train_epoch(_CannedStep([1., 2., 3., 6.], None), [(None, None)] * 4, 0, 0, scheduler,
                                        print, True, '')
    (bar,) = bars
    assert metrics['loss'] == 3.
    assert [p['loss'] for p in bar['postfixes']] == ['1.0000', '1.5000', '2.0000', '3.0000']
    assert bar['closed_with'] == {'loss': '3.0000', 'top1': '50.00', 'board': '0'}


@pytest.mark.parametrize('method', ['cream', 'spos'])
@pytest.mark.parametrize('loss, classes, warned', [(2.30, 10, True), (2.08, 10, True), (2.0, 10, False),
                                                   (3.6, 10, True), (0.8, 10, False), (6.0, 1000, False),
                                                   (6.3, 1000, True), (0.5, 1, False)])
def test_near_chance_warning_decision(loss, classes, warned, method):
    from Paddle_Cream.engine.run_train import near_chance_warning
    text = near_chance_warning(loss, classes, method)
    assert (text is not None) == warned
    if warned:
        assert text.startswith('warning: the supernet has not learned') and '\n' not in text
        assert f'{loss:.3f}' in text and f'chance (ln {classes} = ' in text
        for hint in ('SUPERNET.PRE_PROB', 'EPOCHS', 'LR', 'configs/demo/train.yaml'):
            assert hint in text
        # SPOS has no prior of its own to concentrate: it is told so, not to change a key it ignores
        assert ('try a more concentrated SUPERNET.PRE_PROB' in text) == (method == 'cream')


def test_a_supernet_left_at_chance_says_so_at_the_end_and_labels_its_curves(digits, tmp_path, capsys, monkeypatch):
    """One epoch at LR 1e-7 learns nothing: the run ends on the one warning line; curves.png is given the
    legend saying each epoch's val top-1 is of a random path."""
    import Paddle_Cream.engine.run_train as run_train
    from cli import load_main
    from Paddle_Cream.engine.plots import plot_curves
    calls = []

    def recorded(*args, **kwargs):
        calls.append(kwargs)
        return plot_curves(*args, **kwargs)
    monkeypatch.setattr(run_train, 'plot_curves', recorded)
    code = load_main()(tiny_args(digits, tmp_path, 'LR', 1e-7, epochs=1))
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err[-3000:]
    lines = [line for line in out.splitlines() if 'warning:' in line]
    assert len(lines) == 1 and lines[0] == out.splitlines()[-1]
    assert 'the supernet has not learned' in lines[0]
    assert calls and calls[-1]['labels']['eval_top1'].startswith('val top-1 of a random path each epoch')
    assert len(calls[-1]['notes']['eval_top1']) == 1
