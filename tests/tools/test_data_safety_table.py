"""Issue 22's classes: nothing a user owns is lost (paths taken literally, one run per folder), checkpoints are
checked whole before a run folder exists, a result that is not one is refused, and the command line answers
mistakes in one line. Each case: exit 1, one ``error:`` line, no traceback, nothing new left behind."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bad_input import E, R, SMALL, T, TE, TIMEOUT, run_one_line
from cli import REPO_ROOT, load_main, run_dir
from Paddle_Cream.cli import MODES
from Paddle_Cream.config.defaults import declaration
from pimm.utils.run_lock import LOCK_NAME


def _start(argv):
    return subprocess.Popen([sys.executable, 'tools/main.py', *map(str, argv)], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_holder(folder_parent, proc, deadline=TIMEOUT):
    """The run folder once ``proc`` holds its lock (its pid in the lock file)."""
    end = time.time() + deadline
    while time.time() < end and proc.poll() is None:
        for name in os.listdir(folder_parent) if os.path.isdir(folder_parent) else []:
            lock = os.path.join(folder_parent, name, LOCK_NAME)
            if os.path.isfile(lock):
                with open(lock) as f:
                    if f.read().split()[:1] == [str(proc.pid)]:
                        return os.path.join(folder_parent, name)
        time.sleep(0.1)
    raise AssertionError(f'the first run never held its folder: {proc.stderr.read() if proc.poll() else ""}')


def test_a_second_run_on_the_same_folder_is_refused_naming_the_holder(data, tmp_path):
    """Two real processes, the same SAVE_PATH and MODEL: the second is refused before it writes anything (its
    config would differ: SEED), and once the first is killed its folder is free for the resume."""
    save = tmp_path / 'save'
    first = _start([*T, 'DATA_DIR', data['digits'], 'SAVE_PATH', save, *SMALL, 'EPOCHS', 50])
    try:
        folder = _wait_for_holder(str(save), first)
        config = os.path.join(folder, 'train_config.yaml')
        with open(config) as f:
            before = f.read()
        second = subprocess.run([sys.executable, 'tools/main.py', *T, 'DATA_DIR', data['digits'], 'SAVE_PATH',
                                 str(save), *SMALL, 'EPOCHS', '50', 'SEED', '7', 'AUTO_RESUME', 'True'],
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT)
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert second.returncode == 1 and len(lines) == 1, second.stderr[-3000:]
        assert lines[0] == (f"error: '{folder}' is in use by another run (pid {first.pid} on {os.uname().nodename}): "
                            f"wait for it to end, or give another MODEL or SAVE_PATH")
        with open(config) as f:
            assert f.read() == before   # the refused run wrote nothing
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    resumed = subprocess.run([sys.executable, 'tools/main.py', *T, 'DATA_DIR', data['digits'], 'SAVE_PATH',
                              str(save), *SMALL, 'AUTO_RESUME', 'True'], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]   # a killed holder never blocks its own resume


@pytest.mark.parametrize('save_name', ['out[v2]', 'run*', 'a?b'])
def test_the_newest_search_checkpoint_is_found_in_a_folder_named_like_a_pattern(data, tmp_path, capsys, save_name):
    """evolve without RESUME_PATH takes the newest search under SAVE_PATH, the folder name taken literally (a
    decoy that the name as a pattern would match is not taken)."""
    save = tmp_path / save_name
    theirs = save / '1206-demo_search'
    theirs.mkdir(parents=True)
    shutil.copy(data['search'], theirs / 'checkpoint-last.pdparams')
    decoy = tmp_path / {'out[v2]': 'outv', 'run*': 'run_other', 'a?b': 'axb'}[save_name] / '1207-demo_search'
    decoy.mkdir(parents=True)
    (decoy / 'checkpoint-last.pdparams').write_bytes(b'not a checkpoint')
    os.utime(decoy / 'checkpoint-last.pdparams')   # newer than the real one
    argv = [*E[:2], 'DATA_DIR', data['digits'], 'SAVE_PATH', str(save), *SMALL, 'EVOLVE.POPULATION', 4,
            'EVOLVE.TOP_K', 2, 'EVOLVE.MUTATION_NUM', 2, 'EVOLVE.CROSSOVER_NUM', 2, 'EVOLVE.GENERATIONS', 1,
            'EVOLVE.BN_BATCHES', 1, 'EVOLVE.EVAL_BATCHES', 1]
    assert load_main()(list(map(str, argv))) == 0, capsys.readouterr().err[-3000:]
    with open(os.path.join(run_dir(save, 'demo_evolve'), 'evolve_config.yaml')) as f:
        assert str(theirs / 'checkpoint-last.pdparams') in f.read()


def _yaml(text):
    def setup(data, tmp_path):
        path = tmp_path / 'config.yaml'
        path.write_text(text)
        return {'config': str(path)}
    return setup


def _folder(data, tmp_path):
    path = tmp_path / 'a_folder'
    path.mkdir()
    return {'folder': str(path)}


# (name, arguments, what the one line must contain, the setup giving {placeholder: value})
CONFIG_CASES = [
    ('config file a directory', ['train', '{folder}'], ["'{folder}' is a directory"], _folder),
    ('YAML group written twice', ['train', '{config}'], ["sets 'NET' twice", 'lines 2 and 4'],
     _yaml('EPOCHS: 3\nNET:\n  DROPOUT_RATE: 0.1\nNET:\n  EMA:\n    USE: False\n')),
    ('YAML key written twice in a group', ['train', '{config}'], ["sets 'DECAY' twice", 'lines 3 and 4'],
     _yaml('NET:\n  EMA:\n    DECAY: 0.9\n    DECAY: 0.99\n')),
    ('key in lower case', [*T, 'epochs', '3'], ["unknown config key 'epochs'", "did you mean 'EPOCHS'"], None),
    ('dotted key in lower case', [*T, 'net.ema.use', 'false'], ["did you mean 'NET.EMA.USE'"], None),
    ('group given one value', [*T, 'NET.EMA', '{{USE: false}}'],
     ["'NET.EMA' is a group of keys", 'one by one', 'NET.EMA.USE'], None),
    ('group given one value in the file', ['train', '{config}'], ["'NET' is a group of keys"], _yaml('NET: 5\n')),
    ('RESUME_PATH a directory', [*T, 'RESUME_PATH', '{folder}'], ["RESUME_PATH '{folder}' is a directory"], _folder),
    ('arch file a directory', [*R, 'NET.ARCH_FILE', '{folder}'], ["NET.ARCH_FILE '{folder}' is a directory"],
     _folder),
    ('pretrained weights a directory', [*R, 'NET.PRETRAINED', '{folder}'],
     ["NET.PRETRAINED '{folder}' is a directory"], _folder),
    ('test weights a directory', [*TE, 'NET.SELECTION', '14', 'RESUME_PATH', '{folder}'],
     ["RESUME_PATH '{folder}' is a directory"], _folder),
    ('evolve checkpoint a directory', [*E[:2], 'RESUME_PATH', '{folder}'], ["RESUME_PATH '{folder}' is a directory"],
     _folder),
    ('latency table a directory', [*T, 'SUPERNET.LATENCY_TABLE', '{folder}', 'SUPERNET.LATENCY_MAXIMUM', '4'],
     ["latency table '{folder}' is a directory"], _folder),
]


@pytest.mark.parametrize('name, args, words, setup', CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_and_path_mistakes_are_one_line(data, tmp_path, capsys, name, args, words, setup):
    values = {'digits': data['digits'], 'search': data['search'], **(setup(data, tmp_path) if setup else {})}
    save_path = tmp_path / 'save'
    argv = [a.format(**values) for a in args]
    run_one_line(capsys, [*argv[:2], 'SAVE_PATH', save_path, 'DATA_DIR', data['digits'], *argv[2:]], values, words,
                 save_path, tmp_path)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_every_mode_has_its_help(tmp_path, capsys, monkeypatch, mode, flag):
    """``MODE --help`` (also after a config file) prints the mode's usage, keys with ranges and defaults, and an
    example; exit 0, nothing created (never "config file '--help' not found")."""
    monkeypatch.chdir(tmp_path)
    for argv in ([mode, flag], [mode, 'configs/whatever.yaml', flag]):
        capsys.readouterr()
        assert load_main()(argv) == 0
        out, err = capsys.readouterr()
        assert err == '' and out.startswith(f'usage: python tools/main.py {mode} CONFIG [KEY VALUE ...]'), out[:300]
        keys = [line.split()[0] for line in out.splitlines() if line.startswith('  ') and '; default ' in line]
        assert len(keys) >= 4 and all(declaration(k) is not None for k in keys), keys
        assert f'Example:\n  python tools/main.py {mode} configs/' in out
    assert os.listdir(tmp_path) == []
