"""Shared test set-up: the repo root and tests/helpers importable, quiet Paddle, the digits folder, and
the machine shared between pytest-xdist workers (a ``whole_machine`` test runs alone)."""
import os
import shutil
import sys
import tempfile
import warnings

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
for p in (REPO_ROOT, os.path.join(TESTS_DIR, 'helpers')):
    if p not in sys.path:
        sys.path.insert(0, p)

warnings.filterwarnings('ignore', message='No ccache found')

import machine_share  # noqa: E402  (tests/helpers, importable from here on)


def _is_xdist_controller(config) -> bool:
    return bool(getattr(config.option, 'numprocesses', None)) and not hasattr(config, 'workerinput')


def pytest_configure(config):
    # the controller makes the folder its workers share (they inherit the environment it starts them with)
    if _is_xdist_controller(config):
        os.environ[machine_share.FOLDER_VARIABLE] = tempfile.mkdtemp(prefix='pimm-tests-machine-')
    elif _machine_folder(config) and hasattr(os, 'sched_setaffinity'):
        # each worker on its slice of the cores; every core back for a whole_machine test
        _CORES['all'] = sorted(os.sched_getaffinity(0))
        worker = int(config.workerinput['workerid'].lstrip('gw'))
        os.sched_setaffinity(0, machine_share.share_of_cores(worker, int(config.workerinput['workercount']),
                                                             _CORES['all']))


def pytest_unconfigure(config):
    if _is_xdist_controller(config):
        shutil.rmtree(os.environ.pop(machine_share.FOLDER_VARIABLE), ignore_errors=True)


def _machine_folder(config):
    """The folder the run's xdist workers share the machine through (None in a one-process run)."""
    return os.environ.get(machine_share.FOLDER_VARIABLE) if hasattr(config, 'workerinput') else None


_CORES = {}   # 'all': the cores the worker had before it took its slice


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = _machine_folder(item.config)
    if folder is None:   # one process: nothing to share
        yield
        return
    exclusive = item.get_closest_marker('whole_machine') is not None
    with machine_share.holding(folder, exclusive):
        if exclusive and _CORES:
            with machine_share.running_on(_CORES['all']):
                yield
        else:
            yield


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """A small digits folder the modes run on: 12 images per digit (10 train, 2 val per class)."""
    from Paddle_Cream.data.demo_dataset import ensure_demo_dataset
    root = str(tmp_path_factory.mktemp('digits') / 'digits')
    ensure_demo_dataset('digits', root, log=lambda _: None, per_class=12)
    return root
