"""tools/generate_subImageNet.py: the official lists and the CLI (subprocess)."""
import importlib.util
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TOOL = os.path.join(REPO, 'tools', 'generate_subImageNet.py')
DATA = os.path.join(REPO, 'Paddle_Cream', 'data')
WNIDS = ['n01440764', 'n01443537', 'n01484850']


def load_tool():
    spec = importlib.util.spec_from_file_location('generate_subImageNet', TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(*args):
    """Run the tool from the repo root; never a traceback."""
    res = subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert 'Traceback' not in res.stderr, res.stderr
    return res


def assert_one_line_error(res, *needles):
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def names(wnid, n):
    return sorted(f'{wnid}_{i}.JPEG' for i in range(1000, 1000 + n))


def make_lists(folder, per_class=8, wnids=WNIDS):
    """Lists in the official format (as Cream wrote them)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'subclass_list.txt'), 'w') as f:
        f.write('\n'.join(wnids))
    with open(os.path.join(folder, 'subimages_list.txt'), 'w') as f:
        for w in wnids:
            f.write('{}\n'.format(names(w, per_class)))
    return folder


def make_source(folder, per_class=10, wnids=WNIDS):
    """A fake ImageNet train folder: small files with distinct content."""
    for w in wnids:
        os.makedirs(os.path.join(folder, w))
        for n in names(w, per_class):
            with open(os.path.join(folder, w, n), 'w') as f:
                f.write(n)
    return folder


@pytest.fixture
def env(tmp_path):
    src = make_source(tmp_path / 'imagenet' / 'train')
    lists = make_lists(tmp_path / 'lists')
    dest = tmp_path / 'sub'
    small = ['--lists-dir', lists, '--num-classes', 2,
             '--train-per-class', 4, '--val-per-class', 2]
    return src, dest, small


def test_official_lists():
    mod = load_tool()
    selection = mod.read_lists(DATA)
    with open(os.path.join(DATA, 'subclass_list.txt')) as f:
        wnids = f.read().split()
    assert len(selection) == len(wnids) == 100
    assert [w for w, _ in selection] == wnids == sorted(wnids)
    assert wnids[0] == 'n01440764' and wnids[-1] == 'n01855672'
    for w, kept in selection:
        assert len(kept) == 350 == len(set(kept))
        assert all(n.startswith(w + '_') and n.endswith('.JPEG')
                   for n in kept)
    # the raw lines are already sorted: the first 350 files in sorted order
    with open(os.path.join(DATA, 'subimages_list.txt')) as f:
        raw = [mod._parse_names('x', i, line, w)
               for i, (line, w) in enumerate(zip(f, wnids))]
    assert raw == [kept for _, kept in selection]


def test_symlinks(env):
    src, dest, small = env
    res = run('--source', src, '--dest', dest, *small)
    assert res.returncode == 0, res.stderr
    assert '12 created, 0 already present' in res.stdout
    assert sorted(os.listdir(dest / 'train')) == WNIDS[:2]
    for w in WNIDS[:2]:
        train = sorted(os.listdir(dest / 'train' / w))
        val = sorted(os.listdir(dest / 'val' / w))
        assert train == names(w, 8)[:4] and val == names(w, 8)[4:6]
        assert not set(train) & set(val)
        for split, files in (('train', train), ('val', val)):
            for n in files:
                p = dest / split / w / n
                target = os.readlink(p)
                assert os.path.isabs(target) and os.path.isfile(target)
                assert target == os.path.join(src, w, n)


def test_default_split_250_50_rest_ignored(tmp_path):
    src = make_source(tmp_path / 'train', 350, WNIDS[:1])
    lists = make_lists(tmp_path / 'lists', 350, WNIDS[:1])
    dest = tmp_path / 'sub'
    res = run('--source', src, '--dest', dest, '--lists-dir', lists,
              '--num-classes', 1)
    assert res.returncode == 0, res.stderr
    kept = names(WNIDS[0], 350)
    assert sorted(os.listdir(dest / 'train' / WNIDS[0])) == kept[:250]
    assert sorted(os.listdir(dest / 'val' / WNIDS[0])) == kept[250:300]


def test_copy_and_idempotent(env):
    src, dest, small = env
    assert run('--source', src, '--dest', dest, '--copy', *small
               ).returncode == 0
    p = dest / 'val' / WNIDS[1] / names(WNIDS[1], 8)[5]
    assert p.is_file() and not p.is_symlink()
    assert p.read_text() == names(WNIDS[1], 8)[5]
    res = run('--source', src, '--dest', dest, '--copy', *small)
    assert res.returncode == 0, res.stderr
    assert '0 created, 12 already present' in res.stdout


def test_rerun_creates_nothing(env):
    src, dest, small = env
    assert run('--source', src, '--dest', dest, *small).returncode == 0
    link = dest / 'train' / WNIDS[0] / names(WNIDS[0], 8)[0]
    before = os.lstat(link)
    res = run('--source', src, '--dest', dest, *small)
    assert res.returncode == 0, res.stderr
    assert '0 created, 12 already present, 0 replaced' in res.stdout
    assert os.lstat(link).st_ino == before.st_ino


def test_dry_run_touches_nothing(env):
    src, dest, small = env
    res = run('--source', src, '--dest', dest, '--dry-run', *small)
    assert res.returncode == 0, res.stderr
    assert 'dry run' in res.stdout and '12 created' in res.stdout
    assert 'more' in res.stdout and not dest.exists()


def test_missing_image(env):
    src, dest, small = env
    gone = names(WNIDS[1], 8)[3]
    os.remove(src / WNIDS[1] / gone)
    res = run('--source', src, '--dest', dest, *small)
    assert_one_line_error(res, gone, '1 listed images missing')
    assert not dest.exists()


def test_conflicts_then_force(env):
    src, dest, small = env
    name = names(WNIDS[0], 8)[1]
    blocker = dest / 'train' / WNIDS[0] / name
    blocker.parent.mkdir(parents=True)
    blocker.write_text('not the image')
    res = run('--source', src, '--dest', dest, *small)
    assert_one_line_error(res, str(blocker), '--force')
    assert os.listdir(blocker.parent) == [name]      # nothing else created
    res = run('--source', src, '--dest', dest, '--force', *small)
    assert res.returncode == 0 and '1 replaced' in res.stdout
    assert os.readlink(blocker) == os.path.join(src, WNIDS[0], name)


def test_link_elsewhere_is_conflict(env, tmp_path):
    src, dest, small = env
    assert run('--source', src, '--dest', dest, *small).returncode == 0
    link = dest / 'val' / WNIDS[0] / names(WNIDS[0], 8)[4]
    link.unlink()
    link.symlink_to(tmp_path / 'elsewhere.JPEG')
    res = run('--source', src, '--dest', dest, *small)
    assert_one_line_error(res, str(link), 'elsewhere.JPEG')


def test_from_folder(tmp_path):
    src = make_source(tmp_path / 'train', 5)
    (src / '.hidden').mkdir()
    (src / WNIDS[0] / '.DS_Store').write_text('')
    dest = tmp_path / 'out'
    res = run('--source', src, '--dest', dest, '--from-folder',
              '--num-classes', 2, '--train-per-class', 3,
              '--val-per-class', 1)
    assert res.returncode == 0, res.stderr
    assert '8 created' in res.stdout
    assert sorted(os.listdir(dest / 'val')) == WNIDS[:2]
    assert sorted(os.listdir(dest / 'train' / WNIDS[0])) == \
        names(WNIDS[0], 5)[:3]
    assert os.listdir(dest / 'val' / WNIDS[1]) == [names(WNIDS[1], 5)[3]]
    res = run('--source', src, '--dest', tmp_path / 'o2', '--from-folder',
              '--num-classes', 2, '--train-per-class', 5, '--val-per-class', 1)
    assert_one_line_error(res, 'fewer than 6', WNIDS[0])


@pytest.mark.parametrize('line', [
    "__import__('os').system('touch PWNED')",
    "[1, 2, 3]",
    "('n01440764_1.JPEG',)",
    "['n01440764_1.JPEG'",
    "['../n01440764_1.JPEG']",
])
def test_malformed_lists(tmp_path, line):
    src = make_source(tmp_path / 'train', 3, WNIDS[:1])
    lists = tmp_path / 'lists'
    lists.mkdir()
    (lists / 'subclass_list.txt').write_text(WNIDS[0] + '\n')
    (lists / 'subimages_list.txt').write_text(line + '\n')
    res = run('--source', src, '--dest', tmp_path / 'out', '--lists-dir',
              lists, '--num-classes', 1, '--train-per-class', 1,
              '--val-per-class', 0)
    assert_one_line_error(res, 'subimages_list.txt line 1')
    assert not (tmp_path / 'out').exists()
    assert not os.path.exists(os.path.join(REPO, 'PWNED'))


def test_bad_paths(env, tmp_path):
    src, dest, small = env
    assert_one_line_error(run('--source', tmp_path / 'nope', '--dest', dest,
                              *small), 'source folder not found')
    assert_one_line_error(run('--source', src, '--dest', src / 'sub',
                              *small), 'inside --source')
    assert_one_line_error(run('--source', src, '--dest', src.parent,
                              *small), 'inside --dest')
    os.rename(src / WNIDS[1], tmp_path / 'moved')
    assert_one_line_error(run('--source', src, '--dest', dest, *small),
                          'class folders missing', WNIDS[1])
    assert_one_line_error(run('--source', src, '--dest', dest, '--lists-dir',
                              tmp_path / 'lists', '--num-classes', 4),
                          'the lists hold 3 classes')
    assert not dest.exists()
