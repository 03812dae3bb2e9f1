"""Issue 11's cases as one table, through ``tools/main.py``'s ``main`` (in-process: a subprocess per case
would spend the suite's time importing Paddle; ``test_main_boundary`` runs the real command line): every
user mistake is exit 1 with exactly one ``error:`` line, no exception, no run folder, no partial file."""
import errno
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from bad_input import E, R, SMALL, T, TE, TIMEOUT, arch_file, run_one_line
from cli import REPO_ROOT
from latency import write_table
from pimm.utils.checkpoint_io import load_paddle_file, save_paddle_file

# found only when the image is read: the run has started and its folder exists
READ_TIME = ('dangling image link', 'image link loop')


def _copy_digits(data, tmp_path):
    copy = str(tmp_path / 'digits')
    shutil.copytree(data['digits'], copy, symlinks=True)
    return copy


def _damaged_search(data, tmp_path, change):
    state = load_paddle_file(data['search'])
    change(state)
    path = str(tmp_path / 'damaged.pdparams')
    save_paddle_file(state, path)
    return path


def _half_weights(state):
    keys = sorted(state['state_dict'])
    for k in keys[::2]:
        del state['state_dict'][k]


def _a_file(tmp_path):
    path = tmp_path / 'file'
    path.write_text('x')
    return str(path)


def _bomb(data, tmp_path):
    path = str(tmp_path / 'bomb.yaml')
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 7):
        levels.append(f'{chr(97 + i)}: &{chr(97 + i)} [' + ','.join([f'*{chr(96 + i)}'] * 10) + ']')
    with open(path, 'w') as f:
        f.write('\n'.join(levels) + '\nNET:\n  INPUT_ARCH: *g\n')
    return path


def _not_utf8(data, tmp_path):
    path = str(tmp_path / 'latin1.yaml')
    with open(path, 'wb') as f:
        f.write('MODEL: caf\xe9\n'.encode('latin-1'))
    return path


def _train_table(text=None, sta_num=(1, 1, 2, 1, 1), **kwargs):
    """A setup writing ``text``, or a synthetic latency table for ``train`` (by default for SMALL's hypernetwork
    at 224px, predicting 2.281 to 5.281 ms)."""
    def setup(data, tmp_path):
        path = tmp_path / 'latency_table.json'
        if text is not None:
            path.write_text(text)
            return {'table': str(path)}
        return {'table': write_table(path, sta_num, **kwargs)}
    return setup


def _image_link(kind):
    def setup(data, tmp_path):
        digits = _copy_digits(data, tmp_path)
        folder = os.path.join(digits, 'train', sorted(os.listdir(os.path.join(digits, 'train')))[0])
        if kind == 'dangling':
            os.symlink(os.path.join(folder, 'missing.png'), os.path.join(folder, 'dangling.png'))
        elif kind == 'loop':
            os.symlink(os.path.join(folder, 'loop_b.png'), os.path.join(folder, 'loop_a.png'))
            os.symlink(os.path.join(folder, 'loop_a.png'), os.path.join(folder, 'loop_b.png'))
        elif kind == 'self':
            os.symlink(folder, os.path.join(folder, 'again'))
        elif kind == 'only_train':
            shutil.rmtree(os.path.join(digits, 'val'))
        return digits
    return setup


LT = ['SUPERNET.LATENCY_TABLE', '{table}', 'SUPERNET.LATENCY_MAXIMUM', '4']
# (name, mode and arguments, what the one line must contain, the setup giving {placeholder: value})
CASES = [
    ('latency table missing', [*T, 'SUPERNET.LATENCY_TABLE', '/nonexistent/latency_table.json',
                               'SUPERNET.LATENCY_MAXIMUM', '4'],
     ['/nonexistent/latency_table.json', 'not found'], None),
    ('latency table not JSON', [*T, *LT], ['{table}', 'not readable JSON'], _train_table('x')),
    ('latency table not a table', [*T, *LT], ['{table}', 'not a latency table'], _train_table('{"kind": "x"}')),
    ('latency table for other layers', [*T, *LT], ['sta_num [1, 1, 1, 1, 1]', '[1, 1, 2, 1, 1]'],
     _train_table(sta_num=[1, 1, 1, 1, 1])),
    ('latency table at another resolution', [*T, *LT], ['resolution 192', '224'], _train_table(resolution=192)),
    ('latency table for other classes', [*T, *LT], ['num_classes 100', '10'], _train_table(num_classes=100)),
    ('latency table with another pooling', [*T, *LT], ['global_pool', 'max'], _train_table(global_pool='max')),
    ('latency table of another search space', [*T, *LT], ['search_space', 'another'],
     _train_table(search_space='another')),
    ('latency budget no path meets', [*T, *LT, 'SUPERNET.LATENCY_MAXIMUM', '1.5'],
     ['[0.0, 1.5] ms', '2.281 ms (fastest)', '5.281 ms (slowest)'], _train_table()),
    ('latency budgets sharing no path', [*T, *LT, 'SUPERNET.LATENCY_MAXIMUM', '3', 'SUPERNET.FLOPS_MINIMUM', '140'],
     ['FLOPs budget [140.0, 150.0]', 'latency budget [0.0, 3.0] ms', '2.281 to 5.281 ms'], _train_table()),
    ('latency maximum without a table', [*T, 'SUPERNET.LATENCY_MAXIMUM', '4'], ['SUPERNET.LATENCY_TABLE'], None),
    ('latency table without a maximum', [*T, 'SUPERNET.LATENCY_TABLE', '{table}'], ['SUPERNET.LATENCY_MAXIMUM'],
     _train_table()),
    ('latency minimum above the maximum', [*T, *LT, 'SUPERNET.LATENCY_MINIMUM', '5'], ['[5.0, 4.0]', 'exceeds'],
     _train_table()),
    ('latency budget alone with a FLOPs minimum', [*T, *LT, 'SUPERNET.FLOPS_MAXIMUM', '0',
                                                   'SUPERNET.FLOPS_MINIMUM', '100'], ['FLOPS_MINIMUM 100'],
     _train_table()),
    ('batch size 0', [*R, 'DATASET.BATCH_SIZE', '0'], ['DATASET.BATCH_SIZE'], None),
    ('test batch size 0', [*TE, 'DATASET.BATCH_SIZE', '0'], ['DATASET.BATCH_SIZE'], None),
    ('epochs -1', [*T, 'EPOCHS', '-1'], ['EPOCHS'], None),
    ('epochs 0', [*T, 'EPOCHS', '0'], ['EPOCHS'], None),
    ('workers -2', [*T, 'WORKERS', '-2'], ['WORKERS'], None),
    ('test workers -2', [*TE, 'WORKERS', '-2'], ['WORKERS'], None),
    ('seed -1', [*T, 'SEED', '-1'], ['SEED'], None),
    ('no classes', [*T, 'DATASET.NUM_CLASSES', '0'], ['DATASET.NUM_CLASSES'], None),
    ('scale of one number', [*R, 'AUGMENTATION.SCALE', '[1.0]'], ['AUGMENTATION.SCALE'], None),
    ('image size -5', [*R, 'DATASET.IMAGE_SIZE', '-5'], ['DATASET.IMAGE_SIZE'], None),
    ('image size 100000', [*R, 'DATASET.IMAGE_SIZE', '100000'], ['DATASET.IMAGE_SIZE', '2048'], None),
    ('unknown interpolation', [*R, 'AUGMENTATION.TRAIN_INTERPOLATION', 'lanczosX'], ['TRAIN_INTERPOLATION'], None),
    ('crop 0', [*TE, 'DATASET.CROP_PCT', '0'], ['DATASET.CROP_PCT'], None),
    ('two probabilities', [*T, 'SUPERNET.PRE_PROB', '[0.5,0.5]'], ['SUPERNET.PRE_PROB'], None),
    ('val batch multiple 0', [*T, 'DATASET.VAL_BATCH_MUL', '0'], ['DATASET.VAL_BATCH_MUL'], None),
    ('inference gpu', [*TE, 'INFERENCE', 'gpu'], ['INFERENCE'], None),
    ('unknown demo', [*T, 'DATASET.DEMO', 'foo'], ['DATASET.DEMO'], None),
    ('lr nan', [*T, 'LR', 'nan'], ['LR'], None),
    ('lr inf', [*T, 'LR', '.inf'], ['LR'], None),
    ('ema decay 2', [*T, 'NET.EMA.DECAY', '2'], ['NET.EMA.DECAY'], None),
    ('no gpu', [*T, 'NUM_GPU', '0'], ['NUM_GPU'], None),
    ('empty model name', [*T, 'MODEL', "''"], ['MODEL'], None),
    ('model name leaving SAVE_PATH', [*T, 'MODEL', '/../../../x'], ['MODEL'], None),
    ('config not UTF-8', ['train', '{config}'], ['UTF-8'], lambda d, t: {'config': _not_utf8(d, t)}),
    ('YAML alias bomb', ['train', '{config}'], ['alias'], lambda d, t: {'config': _bomb(d, t)}),
    ('search entry a string', [*T, 'RESUME_PATH', '{ckpt}'], ["'search'"],
     lambda d, t: {'ckpt': _damaged_search(d, t, lambda s: s.update(search='x'))}),
    ('search entry without sta_num', [*T, 'RESUME_PATH', '{ckpt}'], ['sta_num'],
     lambda d, t: {'ckpt': _damaged_search(d, t, lambda s: s['search'].pop('sta_num'))}),
    ('checkpoint without optimizer', [*T, 'RESUME_PATH', '{ckpt}'], ["'optimizer'"],
     lambda d, t: {'ckpt': _damaged_search(d, t, lambda s: s.pop('optimizer'))}),
    ('checkpoint missing half its weights', [*T, 'RESUME_PATH', '{ckpt}'], ['missing key'],
     lambda d, t: {'ckpt': _damaged_search(d, t, _half_weights)}),
    ('arch file at 100000 px', [*R, 'NET.ARCH_FILE', '{arch}', 'DATASET.IMAGE_SIZE', '0'], ['resolution', '2048'],
     lambda d, t: {'arch': arch_file(t, 100000)}),
    ('SAVE_PATH a file', [*T, 'SAVE_PATH', '{file}'], ['{file}'],
     lambda d, t: {'file': _a_file(t)}),
    ('SAVE_PATH under /proc', [*T, 'SAVE_PATH', '/proc/cream_output'], ['/proc/cream_output'], None),
    ('dangling image link', [*T, 'DATA_DIR', '{digits}'], ['dangling.png'],
     lambda d, t: {'digits': _image_link('dangling')(d, t)}),
    ('image link loop', [*T, 'DATA_DIR', '{digits}'], ['loop_'], lambda d, t: {'digits': _image_link('loop')(d, t)}),
    ('class folder linking to itself', [*T, 'DATA_DIR', '{digits}'], ['again'],
     lambda d, t: {'digits': _image_link('self')(d, t)}),
    ('demo folder with train/ only', [*T, 'DATA_DIR', '{digits}', 'DATASET.DEMO', 'digits'], ['val'],
     lambda d, t: {'digits': _image_link('only_train')(d, t)}),
    ('evolve latency limit without a table', [*E, 'EVOLVE.LATENCY_LIMIT', '5'],
     ['EVOLVE.LATENCY_LIMIT 5.0 ms needs a latency table'], None),
    ('evolve latency table missing', [*E, 'EVOLVE.LATENCY_TABLE', '/nonexistent/table.json'],
     ['EVOLVE.LATENCY_TABLE', '/nonexistent/table.json', 'not found'], None),
    ('evolve latency table not JSON', [*E, 'EVOLVE.LATENCY_TABLE', '{table}'],
     ['EVOLVE.LATENCY_TABLE', 'not readable JSON'], _train_table('x')),
    # the search checkpoint's hypernetwork is SMALL's: _train_table's default fits it, [4, 4, 4, 4, 4] does not
    ('evolve latency table of another hypernetwork', [*E, 'SUPERNET.LATENCY_TABLE', '{table}'],
     ['SUPERNET.LATENCY_TABLE', 'sta_num [4, 4, 4, 4, 4]', '{search}'], _train_table(sta_num=[4, 4, 4, 4, 4])),
    ('evolve latency limit below the fastest path',
     [*E, 'EVOLVE.LATENCY_TABLE', '{table}', 'EVOLVE.LATENCY_LIMIT', '0.5'],
     ['EVOLVE.LATENCY_LIMIT 0.5 ms is below the fastest path', '2.281 ms predicted; the slowest 5.281 ms'],
     _train_table()),
    ('test of another model\'s weights', [*TE, 'NET.SELECTION', '14', 'DATASET.NUM_CLASSES', '10',
                                          'RESUME_PATH', '{retrained}'], ['missing'], None),
]


@pytest.mark.parametrize('name, args, words, setup', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(data, tmp_path, capsys, name, args, words, setup):
    values = {'digits': data['digits'], 'retrained': data['retrained'], 'search': data['search']}
    values.update(setup(data, tmp_path) if setup else {})
    save_path = tmp_path / 'save'
    argv = [a.format(**values) for a in args]
    extra = [] if 'SAVE_PATH' in argv else ['SAVE_PATH', str(save_path)]
    if 'DATA_DIR' not in argv:
        extra += ['DATA_DIR', values['digits']]
    if argv[0] != 'test':
        extra += SMALL
    run_one_line(capsys, [*argv[:2], *extra, *argv[2:]], values, words, save_path, tmp_path,
                 run_started=name in READ_TIME)


def _failing(error_number, when):
    """A wrapper of a filesystem call that fails with ``error_number`` for the paths ``when`` accepts."""
    def wrap(real):
        def call(path, *args, **kwargs):
            if when(os.fspath(path)):
                raise OSError(error_number, os.strerror(error_number), os.fspath(path))
            return real(path, *args, **kwargs)
        return call
    return wrap


def _unreadable_config(monkeypatch, data, tmp_path):
    import builtins
    import Paddle_Cream.config.yaml_guard as yaml_guard
    monkeypatch.setattr(yaml_guard, 'open', _failing(errno.EACCES, lambda p: p.endswith('train.yaml'))(builtins.open),
                        raising=False)


def _unreadable_checkpoint(monkeypatch, data, tmp_path):
    monkeypatch.setattr(os, 'open', _failing(errno.EACCES, lambda p: p == data['search'])(os.open))


def _read_only_save_path(monkeypatch, data, tmp_path):
    monkeypatch.setattr(os, 'makedirs', _failing(errno.EROFS, lambda p: p.startswith(str(tmp_path / 'save')))(
        os.makedirs))


def _full_disk_at_the_checkpoint(monkeypatch, data, tmp_path):
    import paddle

    def full_disk(obj, path, *args, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'half a checkpoint')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(paddle, 'save', full_disk)


# (name, extra arguments, what the line must contain, the filesystem fault, whether the run had started)
FAULTS = [
    ('config file unreadable', [], ['train.yaml', 'Permission denied'], _unreadable_config, False),
    ('checkpoint unreadable', ['RESUME_PATH', '{search}'], ['checkpoint-last.pdparams', 'Permission denied'],
     _unreadable_checkpoint, False),
    ('SAVE_PATH on a read-only filesystem', [], ['save', 'Read-only file system'], _read_only_save_path, False),
    ('full disk while writing a checkpoint', [], ['checkpoint', 'No space left on device'],
     _full_disk_at_the_checkpoint, True),
]


@pytest.mark.parametrize('name, args, words, fault, started', FAULTS, ids=[c[0] for c in FAULTS])
def test_a_failing_filesystem_is_one_line(data, tmp_path, capsys, monkeypatch, name, args, words, fault, started):
    """Faults a test run as root cannot make with file modes or a real disk, made at the system call."""
    values = {'search': data['search']}
    save_path = tmp_path / 'save'
    fault(monkeypatch, data, tmp_path)
    argv = [*T, 'DATA_DIR', data['digits'], 'SAVE_PATH', str(save_path), *SMALL, *[a.format(**values) for a in args]]
    run_one_line(capsys, argv, values, words, save_path, tmp_path, run_started=started)


def test_a_fifo_named_like_an_image_does_not_hang(data, tmp_path):
    """Only regular files (or links to them) are images: a FIFO is left out, named, and the run goes on."""
    digits = _copy_digits(data, tmp_path)
    folder = os.path.join(digits, 'train', sorted(os.listdir(os.path.join(digits, 'train')))[0])
    os.mkfifo(os.path.join(folder, 'pipe.png'))
    proc = subprocess.run([sys.executable, 'tools/main.py', *R, 'DATA_DIR', digits, 'SAVE_PATH', str(tmp_path / 's'),
                           'EPOCHS', '1', 'DATASET.BATCH_SIZE', '16', 'WORKERS', '1'], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'pipe.png' in proc.stdout + proc.stderr


def test_skip_corrupt_also_skips_unreadable_images(data, tmp_path):
    """SKIP_CORRUPT True counts and skips images that cannot be read (here a dangling link), as well as
    undecodable ones."""
    digits = _image_link('dangling')(data, tmp_path)
    shutil.copytree(os.path.join(digits, 'train'), os.path.join(digits, 'val'), dirs_exist_ok=True, symlinks=True)
    out = tmp_path / 's'
    proc = subprocess.run([sys.executable, 'tools/main.py', *TE, 'DATA_DIR', digits, 'SAVE_PATH', str(out),
                           'RESUME_PATH', data['retrained'], 'NET.ARCH_FILE', arch_file(tmp_path, 32),
                           'SKIP_CORRUPT', 'True', 'INFERENCE', 'dygraph'], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(glob.glob(str(out / '*' / 'results.json'))[0]) as f:
        assert json.load(f)['skipped'] == 1
    last = [line for line in proc.stdout.splitlines() if line.strip()][-1]
    assert last.endswith('(1 unreadable images skipped, SKIP_CORRUPT)'), last   # said in the last line too
