"""Issue 22's classes: nothing a user owns is lost (paths taken literally, one run per folder), checkpoints are
checked whole before a run folder exists, a result that is not one is refused, and the command line answers
mistakes in one line. Each case: exit 1, one ``error:`` line, no traceback, nothing new left behind."""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bad_input import E, R, SMALL, T, TE, TIMEOUT, arch_file, run_one_line
from cli import REPO_ROOT, load_main, run_dir
from Paddle_Cream.cli import MODES
from Paddle_Cream.config.defaults import declaration
from pimm.utils.checkpoint_io import load_paddle_file, save_paddle_file
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
    config would differ: LR, a key a resume may change), and once the first is killed its folder is free for the
    resume."""
    save = tmp_path / 'save'
    first = _start([*T, 'DATA_DIR', data['digits'], 'SAVE_PATH', save, *SMALL, 'EPOCHS', 50])
    try:
        folder = _wait_for_holder(str(save), first)
        config = os.path.join(folder, 'train_config.yaml')
        with open(config) as f:
            before = f.read()
        second = subprocess.run([sys.executable, 'tools/main.py', *T, 'DATA_DIR', data['digits'], 'SAVE_PATH',
                                 str(save), *SMALL, 'EPOCHS', '50', 'LR', '0.04', 'AUTO_RESUME', 'True'],
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


def test_a_resume_refused_for_a_busy_folder_leaves_the_live_runs_save_in_progress(data, tmp_path, capsys):
    """The deterministic form of the race above: a live process holds a search folder while its checkpoint is
    being saved (a temporary file beside it); ``AUTO_RESUME`` on that folder is refused in one line and the
    temporary file is still there (a resume used to remove it as stale, failing the live run's save)."""
    source = os.path.dirname(data['search'])
    folder = tmp_path / 'save' / os.path.basename(source)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(LOCK_NAME))
    saving = folder / '.checkpoint-last.pdparams.4f2a.tmp'
    saving.write_bytes(b'a save in progress')
    hold = ('import sys, time; sys.path.insert(0, sys.argv[2]); from pimm.utils.run_lock import hold_run_folder; '
            'hold_run_folder(sys.argv[1]); print("held", flush=True); time.sleep(120)')
    holder = subprocess.Popen([sys.executable, '-c', hold, str(folder), REPO_ROOT], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        capsys.readouterr()
        code = load_main()([*T, *SMALL, 'SUPERNET.META_STA_EPOCH', '0', 'EPOCHS', '2', 'SUPERNET.POOL_SIZE', '3',
                            'DATA_DIR', data['digits'], 'SAVE_PATH', str(tmp_path / 'save'), 'AUTO_RESUME', 'True'])
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
        assert code == 1 and lines == [f"error: '{folder}' is in use by another run (pid {holder.pid} on "
                                       f"{os.uname().nodename}): wait for it to end, or give another MODEL or "
                                       f"SAVE_PATH"]
        assert saving.read_bytes() == b'a save in progress'
    finally:
        holder.kill()
        holder.wait()


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


def _poisoned(data, tmp_path, change, name='poisoned.pdparams'):
    """The retrained checkpoint with ``change(state_dict)`` applied to its raw and EMA weights."""
    state = load_paddle_file(data['retrained'])
    for key in ('state_dict', 'state_dict_ema'):
        change(state[key])
    path = str(tmp_path / name)
    save_paddle_file(state, path)
    return path


def _nan_weight(weights):
    weights['conv_stem.weight'][0, 0, 0, 0] = np.nan


def _overflowing_classifier(weights):   # finite weights whose logits overflow float32
    weights['conv_head.bias'][...] = 1e3      # every head feature ~1000 after the activation
    weights['classifier.weight'][...] = 3e38


def _unreadable_images(folder, count=3):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        with open(os.path.join(folder, f'broken_{i}.png'), 'wb') as f:
            f.write(b'\x89PNG but not really')
    return folder


def _result_setup(kind):
    def setup(data, tmp_path):
        values = {'arch': arch_file(tmp_path, 32)}
        if kind in ('nan', 'overflow'):
            values['ckpt'] = _poisoned(data, tmp_path, _nan_weight if kind == 'nan' else _overflowing_classifier)
        if kind == 'no readable val image':
            digits = str(tmp_path / 'digits')
            shutil.copytree(data['digits'], digits)
            for cls in os.listdir(os.path.join(digits, 'val')):
                shutil.rmtree(os.path.join(digits, 'val', cls))
                _unreadable_images(os.path.join(digits, 'val', cls), 1)
            values['digits'] = digits
        if kind == 'no readable input':
            values['input'] = _unreadable_images(str(tmp_path / 'broken_photos'))
        return values
    return setup


TEST_ARGS = [*TE, 'NET.ARCH_FILE', '{arch}', 'INFERENCE', 'dygraph', 'WORKERS', '0']
PREDICT_ARGS = ['predict', os.path.join(REPO_ROOT, 'configs', 'predict.yaml'), 'NET.SELECTION', '-1',
                'NET.ARCH_FILE', '{arch}', 'DATASET.NUM_CLASSES', '10', 'DATASET.CROP_PCT', '1.0',
                'INFERENCE', 'dygraph', 'WORKERS', '0']
EXPORT_ARGS = ['export', os.path.join(REPO_ROOT, 'configs', 'export.yaml'), 'NET.SELECTION', '-1',
               'NET.ARCH_FILE', '{arch}', 'DATASET.NUM_CLASSES', '10', 'EXPORT.FORMAT', 'paddle']
# (name, arguments, what the one line must contain, setup, the run had started (its folder exists), the result
# file that must not be there)
RESULT_CASES = [
    ('test of NaN weights', [*TEST_ARGS, 'RESUME_PATH', '{ckpt}'], ["'conv_stem.weight' holds 1 NaN"],
     _result_setup('nan'), False, None),
    ('predict with NaN weights', [*PREDICT_ARGS, 'RESUME_PATH', '{ckpt}', 'INPUT', '{digits}/val'],
     ["'conv_stem.weight' holds 1 NaN", 'diverge'], _result_setup('nan'), False, None),
    ('export of NaN weights', [*EXPORT_ARGS, 'RESUME_PATH', '{ckpt}'], ["'conv_stem.weight' holds 1 NaN"],
     _result_setup('nan'), False, None),
    ('test whose logits overflow', [*TEST_ARGS, 'RESUME_PATH', '{ckpt}'],
     ['images of', 'gave NaN or infinite logits', 'nothing written'], _result_setup('overflow'), True,
     'results.json'),
    ('predict whose logits overflow', [*PREDICT_ARGS, 'RESUME_PATH', '{ckpt}', 'INPUT', '{digits}/val'],
     ['NaN or infinite logits', 'nothing written'], _result_setup('overflow'), True, 'predictions.json'),
    ('test of a val folder with no readable image', [*TEST_ARGS, 'RESUME_PATH', '{retrained}', 'SKIP_CORRUPT', 'True',
                                                    'DATA_DIR', '{digits}', 'DATASET.DEMO', "''"],
     ['no image of', 'could be scored (10 skipped as unreadable)'], _result_setup('no readable val image'), True,
     'results.json'),
    ('predict on a folder with no readable image', [*PREDICT_ARGS, 'RESUME_PATH', '{retrained}', 'INPUT', '{input}'],
     ["none of the 3 images under INPUT '{input}' could be read"], _result_setup('no readable input'), True,
     'predictions.json'),
]


@pytest.mark.parametrize('name, args, words, setup, started, result', RESULT_CASES, ids=[c[0] for c in RESULT_CASES])
def test_a_result_that_is_not_one_is_refused(data, tmp_path, capsys, name, args, words, setup, started, result):
    values = {'digits': data['digits'], 'retrained': data['retrained'], **setup(data, tmp_path)}
    save_path = tmp_path / 'save'
    argv = [a.format(**values) for a in args]
    extra = ['SAVE_PATH', save_path] + ([] if 'DATA_DIR' in argv else ['DATA_DIR', values['digits']])
    run_one_line(capsys, [*argv[:2], *extra, *argv[2:]], values, words, save_path, tmp_path, run_started=started)
    if result:
        assert not glob.glob(os.path.join(glob.escape(str(save_path)), '*', result)), f'{result} was written'


def test_json_results_are_strict(tmp_path):
    """One writer for every JSON file, refusing NaN and infinity (which other readers reject) by where they are."""
    from Paddle_Cream.engine import UserError
    from Paddle_Cream.engine.output import write_json_atomic
    for bad, where in (({'top1': float('nan')}, 'top1'), ({'rows': [1.0, {'loss': float('inf')}]}, 'rows[1].loss')):
        with pytest.raises(UserError, match=rf'{re.escape(where)} is not a finite number'):
            write_json_atomic(bad, str(tmp_path / 'r.json'))
        assert os.listdir(tmp_path) == []
    write_json_atomic({'top1': 1.5, 'none': None}, str(tmp_path / 'r.json'))
    assert json.loads((tmp_path / 'r.json').read_text(), parse_constant=pytest.fail) == {'top1': 1.5, 'none': None}


def test_names_that_are_not_utf8_are_logged_escaped_and_kept_in_predictions(data, tmp_path):
    """A real subprocess with a UTF-8 console: the log line escapes the name (no logging traceback, the line kept),
    predictions.json keeps the real path (os.fsencode gives the file's bytes back)."""
    folder = tmp_path / 'photos'
    folder.mkdir()
    first = sorted(glob.glob(os.path.join(glob.escape(data['digits']), 'val', '*', '*.png')))[0]
    raw = os.path.join(os.fsencode(str(folder)), b'caf\xe9 \xff.png')
    shutil.copyfile(first, raw)
    save = tmp_path / 'save'
    argv = [a.format(arch=arch_file(tmp_path, 32)) for a in PREDICT_ARGS]
    proc = subprocess.run([sys.executable, 'tools/main.py', *argv, 'RESUME_PATH', data['retrained'], 'INPUT',
                           str(folder), 'SAVE_PATH', str(save)], cwd=REPO_ROOT, capture_output=True, timeout=TIMEOUT,
                          env={**os.environ, 'PYTHONIOENCODING': 'utf-8', 'LC_ALL': 'C.UTF-8'})
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0 and 'Logging error' not in err and 'Traceback' not in err, err[-3000:]
    assert 'caf\\udce9 \\udcff.png' in out   # the table line of the image, escaped
    folder_run = run_dir(save, 'predict')
    with open(os.path.join(folder_run, 'predict.log'), encoding='utf-8') as f:
        assert 'caf\\udce9 \\udcff.png' in f.read()
    with open(os.path.join(folder_run, 'predictions.json')) as f:
        entries = json.load(f)
    assert [os.fsencode(e['path']) for e in entries] == [raw]


# a resume whose config changes what the checkpoint fixes (the search: SMALL, POOL_SIZE 3, demo SLICE 4)
RESUME_CASES = [
    ('search resumed with another slice', [*T, 'RESUME_PATH', '{search}', 'SUPERNET.SLICE', '3'],
     ['{search} was made with SUPERNET.SLICE 4, this run gives 3', "docs/usage.md 'Resuming'"]),
    ('search resumed with another pool size', [*T, 'RESUME_PATH', '{search}', 'SUPERNET.POOL_SIZE', '5'],
     ['SUPERNET.POOL_SIZE 3, this run gives 5']),
    ('search resumed with another seed', [*T, 'RESUME_PATH', '{search}', 'SEED', '1'], ['SEED 42, this run gives 1']),
    ('search resumed with another prior', [*T, 'RESUME_PATH', '{search}', 'SUPERNET.PRE_PROB', '[1,1,1,1,1,1]'],
     ['SUPERNET.PRE_PROB [0.02, 0.02, 0.02, 0.9, 0.02, 0.02], this run gives [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]']),
    ('retrain resumed with another optimizer', [*R, 'RESUME_PATH', '{retrained}', 'OPT', 'adamw'],
     ["{retrained} was made with OPT 'rmsproptf', this run gives 'adamw'"]),
    ('retrain resumed without EMA', [*R, 'RESUME_PATH', '{retrained}', 'NET.EMA.USE', 'False'],
     ['NET.EMA.USE True, this run gives False']),
]


@pytest.mark.parametrize('name, args, words', RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_a_resume_that_changes_a_fixed_key_is_refused(data, tmp_path, capsys, name, args, words):
    values = {'search': data['search'], 'retrained': data['retrained']}
    save_path = tmp_path / 'save'
    argv = [a.format(**values) for a in args]
    made_with = ['SUPERNET.POOL_SIZE', '3'] if argv[0] == 'train' else []   # the search's other fixed values
    run_one_line(capsys, [*argv[:2], 'SAVE_PATH', save_path, 'DATA_DIR', data['digits'], *SMALL, *made_with,
                          *argv[2:]], values, words, save_path, tmp_path)


def test_a_resume_logs_the_keys_it_may_change(data, tmp_path, capsys):
    save = tmp_path / 'save'
    argv = [*R, 'RESUME_PATH', data['retrained'], 'SAVE_PATH', save, 'DATA_DIR', data['digits'], 'EPOCHS', 2,
            'DATASET.BATCH_SIZE', 16, 'WORKERS', 0, 'LR', 0.02]
    assert load_main()(list(map(str, argv))) == 0, capsys.readouterr().err[-3000:]
    with open(os.path.join(run_dir(save, 'demo_retrain'), 'retrain.log')) as f:
        log = f.read()
    assert 'changed on resume: EPOCHS 1 -> 2' in log and 'changed on resume: LR 0.002 -> 0.02' in log
    assert 'changed on resume: RESUME_PATH' not in log


def _damaged(source_key, change):
    """A setup: a copy of the table's search (or retrain) checkpoint with ``change(state)`` applied."""
    def setup(data, tmp_path):
        state = load_paddle_file(data[source_key])
        change(state)
        path = str(tmp_path / 'damaged.pdparams')
        save_paddle_file(state, path)
        return {'ckpt': path}
    return setup


def _first_buffer(state, value):
    entry = state['optimizer']['state'][0]
    entry[next(iter(entry))] = value


def _board_entry(key, value):
    def change(state):
        state['board']['entries'][0][key] = value
    return change


def _more_entries(state):
    state['board']['entries'] = state['board']['entries'] * 2


SEARCH_RESUME = [*T, 'RESUME_PATH', '{ckpt}', 'SUPERNET.POOL_SIZE', '3']
RETRAIN_RESUME = [*R, 'RESUME_PATH', '{ckpt}']
# (name, arguments, what the one line must contain, the damage)
CHECKPOINT_CASES = [
    ('search optimizer buffer of another shape', SEARCH_RESUME, ['optimizer state: momentum_buffer of parameter 0',
                                                                 'float32 [3]'],
     _damaged('search', lambda s: _first_buffer(s, np.zeros(3, np.float32)))),
    ('search optimizer buffer with NaN', SEARCH_RESUME, ['with NaN/inf'],
     _damaged('search', lambda s: _first_buffer(s, np.full_like(s['optimizer']['state'][0]['momentum_buffer'],
                                                                np.nan)))),
    ('search optimizer missing a group', SEARCH_RESUME, ['optimizer state does not fit: group sizes'],
     _damaged('search', lambda s: s['optimizer']['param_groups'].pop())),
    ('search optimizer learning rate a string', SEARCH_RESUME, ["group 0's lr is 'fast'"],
     _damaged('search', lambda s: s['optimizer']['param_groups'][0].update(lr='fast'))),
    ('search epoch negative', SEARCH_RESUME, ["its 'epoch' is -1"], _damaged('search', lambda s: s.update(epoch=-1))),
    ('search board path of other layers', SEARCH_RESUME, ['board entry 0 has path [[0], [1], [0]]'],
     _damaged('search', _board_entry('path', [[0], [1], [0]]))),
    ('search board soft labels of another slice', SEARCH_RESUME, ['board entry 0 soft labels is float32 [3, 10]',
                                                                  'finite float [4, 10]'],
     _damaged('search', _board_entry('soft_labels', np.zeros((3, 10), np.float32)))),
    ('search board inputs of another size', SEARCH_RESUME, ['board entry 0 inputs is float32 [4, 3, 64, 64]'],
     _damaged('search', _board_entry('inputs', np.zeros((4, 3, 64, 64), np.float32)))),
    ('search board top-1 NaN', SEARCH_RESUME, ['board entry 0 has top-1 nan'],
     _damaged('search', _board_entry('top1', float('nan')))),
    ('search board over its pool size', SEARCH_RESUME, ['SUPERNET.POOL_SIZE is 3'], _damaged('search', _more_entries)),
    ('search meta layer of another slice', SEARCH_RESUME, ['its meta layer is', 'DATASET.NUM_CLASSES x SUPERNET.SLICE'],
     _damaged('search', lambda s: s['meta_layer'].update({'meta_layer.weight': np.zeros((30, 1), np.float32)}))),
    ('retrain optimizer buffer of another shape', RETRAIN_RESUME, ['optimizer state:', 'float32 [3]'],
     _damaged('retrained', lambda s: _first_buffer(s, np.zeros(3, np.float32)))),
    ('retrain EMA weights missing', RETRAIN_RESUME, ['missing'],
     _damaged('retrained', lambda s: s['state_dict_ema'].pop('conv_stem.weight'))),
    ('retrain epoch a string', RETRAIN_RESUME, ["its 'epoch' is 'three'"],
     _damaged('retrained', lambda s: s.update(epoch='three'))),
    ('fine-tuning from NaN weights', [*R, 'NET.PRETRAINED', '{ckpt}'], ["'conv_stem.weight' holds 1 NaN"],
     _damaged('retrained', lambda s: [_nan_weight(s[k]) for k in ('state_dict', 'state_dict_ema')])),
]


@pytest.mark.parametrize('name, args, words, setup', CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_checkpoint_is_checked_whole_before_the_run_folder(data, tmp_path, capsys, name, args, words, setup):
    values = {'digits': data['digits'], **setup(data, tmp_path)}
    save_path = tmp_path / 'save'
    argv = [a.format(**values) for a in args]
    run_one_line(capsys, [*argv[:2], 'SAVE_PATH', save_path, 'DATA_DIR', data['digits'], *SMALL, *argv[2:]], values,
                 words, save_path, tmp_path)
