"""``pip install .``: the wheel holds the three packages with every data file they read at run time and the
two commands, and installed into a new virtual environment it works from a folder outside the checkout.

Nothing is downloaded: the wheel is built with the setuptools of the test environment (``--no-build-isolation``)
and installed ``--no-deps --no-index``; the new environment sees the test environment's packages (paddle,
numpy...) through a ``.pth`` file placed after its own site-packages. (``venv --system-site-packages`` would
not do: created from a virtual environment it exposes the base interpreter's site-packages, not this one's.)
"""
import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from cli import REPO_ROOT

PACKAGES = ('pimm', 'Paddle_Cream', 'torch2paddle')
ENTRY_MODULE = '_cream_entry.py'
DATA_FILES = ('Paddle_Cream/data/cream_flops_op_table.json', 'Paddle_Cream/data/cream_published_models.json',
              'Paddle_Cream/data/subclass_list.txt', 'Paddle_Cream/data/subimages_list.txt',
              'pimm/data/_info/imagenet_class_names.txt', 'pimm/data/_info/imagenet_synsets.txt')
GLOG_LINE = re.compile(r'^[IWEF]\d{4} \d\d:\d\d:\d\d', re.MULTILINE)   # Paddle's C++ log lines


def _version() -> str:
    tree = ast.parse(open(os.path.join(REPO_ROOT, 'Paddle_Cream', '__init__.py')).read())
    return next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and [t.id for t in node.targets if isinstance(t, ast.Name)] == ['__version__'])


def _package_files():
    """Every file of the three packages (sources and data) as a path relative to the checkout."""
    for package in PACKAGES:
        for dirpath, dirnames, names in os.walk(os.path.join(REPO_ROOT, package)):
            dirnames[:] = [d for d in dirnames if d != '__pycache__']
            for name in names:
                if not name.endswith('.pyc'):
                    yield os.path.relpath(os.path.join(dirpath, name), REPO_ROOT).replace(os.sep, '/')


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel ``pip wheel`` builds from a copy of the checkout (its build/ and *.egg-info stay there)."""
    root = tmp_path_factory.mktemp('wheel')
    src = root / 'src'
    src.mkdir()
    for name in os.listdir(REPO_ROOT):   # pyproject.toml, README.md, _cream_entry.py, ...
        if os.path.isfile(os.path.join(REPO_ROOT, name)):
            shutil.copy2(os.path.join(REPO_ROOT, name), src / name)
    for package in PACKAGES:
        shutil.copytree(os.path.join(REPO_ROOT, package), src / package,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                           '--check-build-dependencies', '--no-index', '-w', str(root / 'dist'), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = glob.glob(str(root / 'dist' / '*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_every_package_file_and_the_commands(wheel):
    version = _version()
    assert os.path.basename(wheel) == f'paddle_cream-{version}-py3-none-any.whl'
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = z.read(f'paddle_cream-{version}.dist-info/entry_points.txt').decode()
        metadata = z.read(f'paddle_cream-{version}.dist-info/METADATA').decode()
    assert set(DATA_FILES) <= names, sorted(set(DATA_FILES) - names)
    missing = sorted(set(_package_files()) - names)
    assert not missing, f'files of the packages left out of the wheel (add them to package-data): {missing}'
    assert ENTRY_MODULE in names
    assert not [n for n in names if n.startswith(('tests/', 'tools/', 'bench/', 'configs/'))]
    assert 'cream = _cream_entry:main' in entry_points
    assert 'cream-convert = torch2paddle.__main__:console_main' in entry_points
    # paddle itself only as an extra (the GPU build is another distribution); ONNX and OpenVINO extras
    requires = [line.split(':', 1)[1].strip() for line in metadata.splitlines() if line.startswith('Requires-Dist:')]
    assert not [r for r in requires if r.startswith('paddlepaddle') and 'extra ==' not in r], requires
    for extra in ('cpu', 'onnx', 'openvino'):
        assert f'Provides-Extra: {extra}' in metadata


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory):
    """``(environment, run)``: a new virtual environment with the wheel installed, and ``run(*command)`` running
    a command there from a folder outside the checkout, without PYTHONPATH."""
    root = tmp_path_factory.mktemp('installed')
    venv = root / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    python = str(venv / 'bin' / 'python')
    proc = subprocess.run([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', '--no-index',
                           '--no-compile', wheel], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site_packages = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                                   capture_output=True, text=True, check=True).stdout.strip()
    outer = [p for p in sys.path if os.path.basename(p) in ('site-packages', 'dist-packages') and os.path.isdir(p)]
    assert outer, sys.path
    with open(os.path.join(site_packages, 'zz_test_environment.pth'), 'w') as f:
        f.write('\n'.join(outer) + '\n')
    work = root / 'work'
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP')}
    env.update(PATH=f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}', VIRTUAL_ENV=str(venv), PYTHONNOUSERSITE='1')

    def run(*command, timeout=300):
        return subprocess.run([str(c) for c in command], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)
    return {'venv': str(venv), 'site_packages': site_packages, 'work': work, 'python': python}, run


IMPORT_CHECK = textwrap.dedent('''
    import importlib.metadata, json, os, sys
    import numpy as np
    import paddle
    from PIL import Image
    import pimm, Paddle_Cream, torch2paddle, _cream_entry
    from Paddle_Cream.models.search_space import data_text
    from Paddle_Cream.search import search_for_layer
    from pimm.data import imagenet_class_names, imagenet_synsets

    model = pimm.create_model('cream_14')
    model.eval()
    logits = model(paddle.randn([1, 3, 64, 64]))
    paddle.save(model.state_dict(), 'cream_14_random.pdparams')
    rng = np.random.RandomState(0)
    for i, name in enumerate(['c0/a.png', 'c0/b.jpg', 'c1/c.png']):   # an ImageNet-style val folder
        os.makedirs(os.path.dirname(os.path.join('data', 'val', name)), exist_ok=True)
        Image.fromarray((rng.rand(70 + 10 * i, 90, 3) * 255).astype('uint8')).save(os.path.join('data', 'val', name))
    print(json.dumps({
        'files': [m.__file__ for m in (pimm, Paddle_Cream, torch2paddle, _cream_entry)],
        'sys_path': sys.path, 'cwd': os.getcwd(),
        'version': Paddle_Cream.__version__, 'dist_version': importlib.metadata.version('paddle-cream'),
        'logits': list(logits.shape), 'budget': search_for_layer(0, 600),
        'classes': len(imagenet_class_names()), 'synsets': len(set(imagenet_synsets())),
        'subclasses': len(data_text('subclass_list.txt').split()),
    }))
''')

# NUM_GPU 2 from the `cream` entry: the command given to paddle.distributed.launch (not run) starts the same
# entry file, the installed one, with this environment's python
RELAUNCH_CHECK = textwrap.dedent('''
    import json, sys
    import _cream_entry
    import Paddle_Cream.cli as cli
    cli._run_launcher = lambda cmd, env: print(json.dumps(cmd)) or 0
    sys.argv = ['cream', *sys.argv[1:]]
    sys.exit(_cream_entry.main())
''')


def test_installed_package_runs_outside_the_checkout(installed):
    env, run = installed
    proc = run(env['python'], '-c', IMPORT_CHECK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in info['files']:   # the installed copies, not the checkout's
        assert os.path.realpath(path).startswith(os.path.realpath(env['site_packages']) + os.sep), path
    repo = os.path.realpath(REPO_ROOT)
    on_path = [p for p in info['sys_path'] if os.path.realpath(p or info['cwd']) == repo
               or os.path.realpath(p or info['cwd']).startswith(repo + os.sep)]
    assert not on_path, on_path
    assert info['version'] == info['dist_version'] == _version()
    assert info['logits'] == [1, 1000] and info['budget'] == [[4, 4, 4, 4, 4], 224]
    assert info['classes'] == info['synsets'] == 1000 and info['subclasses'] == 100

    proc = run('cream', '--help')
    assert proc.returncode == 0 and 'usage: cream {train,retrain,test,evolve,rank,export,predict,latency} CONFIG' in proc.stdout
    assert run('cream').returncode == 2   # no arguments: the help, as a usage error
    proc = run('cream-convert', '--help')
    assert proc.returncode == 0 and 'usage: cream-convert' in proc.stdout, proc.stdout + proc.stderr

    weights = ['NET.SELECTION', 14, 'RESUME_PATH', 'cream_14_random.pdparams', 'SAVE_PATH', 'out']
    argv = ['test', os.path.join(REPO_ROOT, 'configs', 'test.yaml'), *weights, 'DATA_DIR', 'data', 'NUM_GPU', 2]
    proc = run(env['python'], '-c', RELAUNCH_CHECK, *argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cmd = json.loads(proc.stdout.strip().splitlines()[-1])
    script = cmd[-len(argv) - 1]
    assert cmd[:3] == [env['python'], '-m', 'paddle.distributed.launch'] and cmd[-len(argv):] == list(map(str, argv))
    assert os.path.realpath(script) == os.path.realpath(os.path.join(env['site_packages'], '_cream_entry.py')), cmd

    proc = run('cream', 'export', os.path.join(REPO_ROOT, 'configs', 'export.yaml'), *weights,
               'MODEL', 'exp', 'EXPORT.FORMAT', 'paddle')
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert not GLOG_LINE.search(proc.stdout + proc.stderr), proc.stderr[-3000:]   # the entry set the log level
    export_dir, = glob.glob(str(env['work'] / 'out' / '*-exp'))
    assert os.path.isfile(os.path.join(export_dir, 'export.json'))
    assert glob.glob(os.path.join(export_dir, 'inference.*'))

    proc = run('cream', 'predict', os.path.join(REPO_ROOT, 'configs', 'predict.yaml'), *weights,
               'MODEL', 'pred', 'INPUT', os.path.join('data', 'val'), 'WORKERS', 0)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert not GLOG_LINE.search(proc.stdout + proc.stderr), proc.stderr[-3000:]
    predict_dir, = glob.glob(str(env['work'] / 'out' / '*-pred'))
    with open(os.path.join(predict_dir, 'predictions.json')) as f:
        predictions = json.load(f)
    assert len(predictions) == 3 and all(len(p['topk']) == 5 for p in predictions)
