"""Bad input to ``python -m torch2paddle``: one line on stderr, non-zero exit, nothing written or run."""
import os
import pickle
import subprocess
import sys
import zipfile

import pytest

from timm_reference import build_timm_cream, published_table, randomize, save_official_checkpoint

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE = published_table()


def run_cli(*args):
    return subprocess.run([sys.executable, '-m', 'torch2paddle', *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def assert_clean_failure(proc, dst, *words):
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith('torch2paddle: error:'), err[0]
    assert 'Traceback' not in proc.stderr
    for w in words:
        assert w in err[0], err[0]
    assert not os.path.exists(dst)
    assert not [f for f in os.listdir(os.path.dirname(dst)) if f.endswith('.tmp')]


@pytest.fixture(scope='module')
def good_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / '14.pth.tar'
    save_official_checkpoint(randomize(build_timm_cream(TABLE['14']['arch'])), path)
    return path


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_missing_file(tmp_path):
    dst = tmp_path / 'out.pdparams'
    assert_clean_failure(run_cli(tmp_path / 'nope.pth.tar', dst, '--model', 'cream_14'), dst, 'nope.pth.tar')


def test_truncated_file(tmp_path, good_ckpt):
    src, dst = tmp_path / 'cut.pth.tar', tmp_path / 'out.pdparams'
    data = good_ckpt.read_bytes()
    src.write_bytes(data[:len(data) // 2])
    assert_clean_failure(run_cli(src, dst, '--model', 'cream_14'), dst, 'cut.pth.tar')


def test_not_a_checkpoint(tmp_path):
    dst = tmp_path / 'out.pdparams'
    text = tmp_path / 'notes.txt'
    text.write_text('hello, I am not a checkpoint\n')
    assert_clean_failure(run_cli(text, dst, '--model', 'cream_14'), dst)
    plain = tmp_path / 'list.pkl'
    plain.write_bytes(pickle.dumps([1, 2, 3]))
    assert_clean_failure(run_cli(plain, dst, '--model', 'cream_14'), dst)
    archive = tmp_path / 'other.zip'
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr('readme.txt', 'no pickles here')
    assert_clean_failure(run_cli(archive, dst, '--model', 'cream_14'), dst)


def test_checkpoint_of_another_model(tmp_path):
    src, dst = tmp_path / '43.pth.tar', tmp_path / 'out.pdparams'
    save_official_checkpoint(randomize(build_timm_cream(TABLE['43']['arch'])), src)
    assert_clean_failure(run_cli(src, dst, '--model', 'cream_14'), dst, 'does not fit', 'blocks.')


def test_wrong_num_classes(tmp_path, good_ckpt):
    dst = tmp_path / 'out.pdparams'
    assert_clean_failure(run_cli(good_ckpt, dst, '--model', 'cream_14', '--num-classes', '100'), dst,
                         'classifier')


def test_unknown_model_lists_choices(tmp_path, good_ckpt):
    dst = tmp_path / 'out.pdparams'
    assert_clean_failure(run_cli(good_ckpt, dst, '--model', 'cream_15'), dst, 'cream_14')


@pytest.mark.parametrize('wrap', ['raw-pickle', 'zip', 'legacy'])
def test_hostile_pickle_is_refused_and_not_run(tmp_path, wrap):
    import torch
    marker = tmp_path / 'PWNED'
    src, dst = tmp_path / 'evil.pth.tar', tmp_path / 'out.pdparams'
    payload = {'state_dict': {'x': Evil(marker)}}
    if wrap == 'raw-pickle':
        src.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, src, _use_new_zipfile_serialization=wrap == 'zip')
    proc = run_cli(src, dst, '--model', 'cream_14')
    assert_clean_failure(proc, dst, 'refusing')
    assert not marker.exists()


def test_existing_destination_untouched_on_failure(tmp_path):
    dst = tmp_path / 'out.pdparams'
    dst.write_bytes(b'previous')
    proc = run_cli(tmp_path / 'nope.pth.tar', dst, '--model', 'cream_14')
    assert proc.returncode != 0
    assert dst.read_bytes() == b'previous'


def _refused_keeping(proc, kept: dict, *words):
    """One error line, a non-zero exit, and every file in ``kept`` (path -> bytes) as it was."""
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('torch2paddle: error:'), proc.stderr
    assert all(w in err[0] for w in words), err[0]
    for path, data in kept.items():
        assert path.read_bytes() == data, path


def test_destination_that_is_the_source_is_refused_even_with_overwrite(tmp_path, good_ckpt):
    src = tmp_path / 'official.pth.tar'
    src.write_bytes(good_ckpt.read_bytes())
    original = src.read_bytes()
    (tmp_path / 'link.pth.tar').symlink_to(src)
    os.link(src, tmp_path / 'hard.pth.tar')
    os.mkdir(tmp_path / 'sub')
    for dst in (src, tmp_path / 'link.pth.tar', tmp_path / 'hard.pth.tar', tmp_path / 'sub' / '..' / src.name):
        for flags in ((), ('--overwrite',)):
            _refused_keeping(run_cli(src, dst, '--model', 'cream_14', *flags), {src: original},
                             'is the checkpoint being converted')
    assert sorted(os.listdir(tmp_path)) == ['hard.pth.tar', 'link.pth.tar', 'official.pth.tar', 'sub']


def test_existing_destination_needs_overwrite(tmp_path, good_ckpt):
    dst = tmp_path / 'out.pdparams'
    dst.write_bytes(b'an earlier conversion')
    _refused_keeping(run_cli(good_ckpt, dst, '--model', 'cream_14'), {dst: b'an earlier conversion'},
                     str(dst), '--overwrite')
    proc = run_cli(good_ckpt, dst, '--model', 'cream_14', '--overwrite')
    assert proc.returncode == 0, proc.stderr
    assert dst.read_bytes() != b'an earlier conversion' and dst.stat().st_size > 100_000
    folder = tmp_path / 'a_folder'
    folder.mkdir()
    _refused_keeping(run_cli(good_ckpt, folder, '--model', 'cream_14', '--overwrite'), {}, 'is a directory')
    assert os.listdir(folder) == []


@pytest.mark.parametrize('value', ['0', '-3', 'ten', '2.5'])
def test_num_classes_must_be_a_positive_integer(tmp_path, good_ckpt, value):
    dst = tmp_path / 'out.pdparams'
    proc = run_cli(good_ckpt, dst, '--model', 'cream_14', '--num-classes', value)
    assert proc.returncode == 2
    assert_clean_failure(proc, dst, '--num-classes', 'positive integer', repr(value))
