"""tools/main.py's boundary: filesystem errors are one line naming the path, SIGTERM is Ctrl-C, a
non-finite loss stops the run, programming errors keep their traceback."""
import errno
import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from cli import REPO_ROOT, load_main, run_main

TINY = ['EPOCHS', 1, 'DATASET.BATCH_SIZE', 16, 'SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 150,
        'SUPERNET.META_STA_EPOCH', 0, 'SUPERNET.UPDATE_ITER', 3, 'SUPERNET.POOL_SIZE', 3, 'WORKERS', 0]


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and 'it/s' not in line and 's/it' not in line]
    assert len(lines) == 1 and lines[0].startswith('error:') and 'Traceback' not in stderr, stderr[-3000:]
    return lines[0]


def test_save_path_that_is_a_file_is_one_line(digits, tmp_path):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('x')
    proc = run_main(['train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', blocker, *TINY])
    assert proc.returncode == 1
    line = _one_error_line(proc.stderr)
    assert str(blocker) in line and ('Not a directory' in line or 'File exists' in line)


def test_a_full_disk_while_writing_names_the_file(digits, tmp_path, monkeypatch, capsys):
    """ENOSPC comes from a write without a file name: the atomic writer says which file it was."""
    import Paddle_Cream.engine.output as output

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(output.json, 'dump', full_disk)
    code = load_main()(['train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', str(tmp_path),
                        *map(str, TINY)])
    assert code == 1
    line = _one_error_line(capsys.readouterr().err)
    assert 'No space left on device' in line and 'board.json' in line
    assert not glob.glob(str(tmp_path / '*' / '.*.tmp'))  # the temporary file went with the failure


def test_an_os_error_of_the_program_keeps_its_traceback(monkeypatch):
    """Only errors about the user's files and disks are shortened; anything else is a bug to report."""
    import Paddle_Cream.engine.run_test as run_test

    def bug(cfg):
        raise OSError(errno.ECHILD, 'a bug, not a user mistake')
    monkeypatch.setattr(run_test, 'run_test', bug)
    monkeypatch.setattr(run_test, 'check_test_inputs', lambda cfg: None)
    with pytest.raises(OSError, match='a bug'):
        load_main()(['test', 'configs/demo/test.yaml'])


def test_an_error_while_stopping_is_the_interruption_and_a_second_sigterm_is_ignored(monkeypatch, capsys):
    """What the unwinding from a SIGTERM runs into (here a clean-up that fails after a second SIGTERM) is
    reported with the interruption, exit 130, not as a user error of its own."""
    import Paddle_Cream.engine.run_test as run_test
    from Paddle_Cream.engine import UserError

    def stopped(cfg):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)   # the handler raises here
        finally:
            os.kill(os.getpid(), signal.SIGTERM)   # ignored: it would cut the clean-up short
            time.sleep(0.1)
            raise UserError('the clean-up failed')
    monkeypatch.setattr(run_test, 'run_test', stopped)
    monkeypatch.setattr(run_test, 'check_test_inputs', lambda cfg: None)
    previous = signal.getsignal(signal.SIGTERM)
    code = load_main()(['test', 'configs/demo/test.yaml'])
    assert signal.getsignal(signal.SIGTERM) == previous
    assert code == 130
    assert _one_error_line(capsys.readouterr().err) == 'error: interrupted (while stopping: the clean-up failed)'


def test_sigterm_ends_like_ctrl_c_and_leaves_no_temporary_file(digits, tmp_path):
    out = tmp_path / 'out'
    args = ['train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', out, *TINY, 'EPOCHS', 50]
    proc = subprocess.Popen([sys.executable, 'tools/main.py', *map(str, args)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not glob.glob(str(out / '*' / 'checkpoint-last.pdparams')):
        time.sleep(0.2)
    assert proc.poll() is None, 'the run ended before it could be stopped'
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert _one_error_line(stderr) == 'error: interrupted', stderr[-3000:]
    assert not glob.glob(str(out / '*' / '.*.tmp'))


def test_a_diverging_run_stops_at_the_first_non_finite_loss(digits, tmp_path):
    """A learning rate that blows the weights up: one line naming epoch and iteration, exit 1, and no
    checkpoint written after it (the last good one stays the last one)."""
    proc = run_main(['train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path, *TINY,
                     'LR', 1e30, 'NET.EMA.USE', False])
    assert proc.returncode == 1, proc.stdout[-2000:]
    line = _one_error_line(proc.stderr)
    assert line.startswith('error: epoch 0, iteration ') and 'the training loss is' in line
    assert 'no checkpoint was written' in line
    assert not glob.glob(str(tmp_path / '*' / 'checkpoint-last.pdparams'))


def test_sigterm_during_a_save_removes_its_temporary_file(digits, tmp_path, monkeypatch, capsys):
    """The signal arrives while the checkpoint is half written: the temporary file goes, no checkpoint
    appears, the run ends with one line."""
    import paddle
    real_save = paddle.save

    def interrupted_save(obj, path, *args, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'half a checkpoint')
        os.kill(os.getpid(), signal.SIGTERM)   # handled at the next instruction, inside the save
        real_save(obj, path, *args, **kwargs)
    monkeypatch.setattr(paddle, 'save', interrupted_save)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = load_main()(['train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', str(tmp_path),
                            *map(str, TINY)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 130 and _one_error_line(capsys.readouterr().err) == 'error: interrupted'
    run = glob.glob(str(tmp_path / '*'))
    assert len(run) == 1 and not glob.glob(os.path.join(run[0], '.*.tmp'))
    assert not os.path.exists(os.path.join(run[0], 'checkpoint-last.pdparams'))


def test_result_files_get_the_umask_mode_not_the_temporary_files(digits, tmp_path):
    """Checkpoints, JSON, CSV and PNG results are as readable as the logs beside them (0o644 under umask 022)."""
    proc = run_main(['train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path, *TINY,
                     'EPOCHS', 2])   # the board opens after epoch 0: best_arch.json needs a second epoch
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = glob.glob(str(tmp_path / '*'))[0]
    log_mode = os.stat(os.path.join(run, 'train.log')).st_mode & 0o777
    for name in ('checkpoint-last.pdparams', 'board.json', 'best_arch.json', 'summary.csv', 'board.png'):
        assert os.stat(os.path.join(run, name)).st_mode & 0o777 == log_mode, name
