"""The suite runs on two pytest-xdist workers: a ``whole_machine`` test (one that times things) must run
with no other test beside it, and a waiting one must not be starved by the tests that share the machine."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import machine_share
from cli import REPO_ROOT


def _intervals(folder, plan):
    """Run ``plan`` [(name, exclusive, start delay, seconds held)] in threads; each entry's held interval."""
    held = {}

    def hold(name, exclusive, delay, seconds):
        time.sleep(delay)
        with machine_share.holding(folder, exclusive):
            start = time.monotonic()
            time.sleep(seconds)
            held[name] = (start, time.monotonic())

    threads = [threading.Thread(target=hold, args=entry) for entry in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return held


def _overlap(a, b):
    return min(a[1], b[1]) - max(a[0], b[0]) > 0


def test_shared_holders_run_together_and_an_exclusive_one_alone(tmp_path):
    held = _intervals(str(tmp_path), [('shared 1', False, 0.0, 0.6), ('shared 2', False, 0.1, 0.6),
                                      ('alone', True, 0.2, 0.3), ('shared 3', False, 0.3, 0.3)])
    assert _overlap(held['shared 1'], held['shared 2'])
    assert not any(_overlap(held['alone'], held[name]) for name in ('shared 1', 'shared 2', 'shared 3'))
    # it asked before 'shared 3' and got the machine first
    assert held['alone'][1] <= held['shared 3'][0]


def test_a_waiting_exclusive_holder_is_not_starved_by_overlapping_shared_ones(tmp_path):
    """Two workers whose tests overlap keep the room held without a gap; the gate lets the waiter in."""
    folder, stop, waited = str(tmp_path), threading.Event(), []

    def worker(offset):
        time.sleep(offset)
        while not stop.is_set():
            with machine_share.holding(folder, exclusive=False):
                time.sleep(0.1)

    workers = [threading.Thread(target=worker, args=(offset,)) for offset in (0.0, 0.05)]
    for t in workers:
        t.start()
    time.sleep(0.3)
    threading.Timer(3.0, stop.set).start()   # without the gate the waiter would wait until they stop
    start = time.monotonic()
    with machine_share.holding(folder, exclusive=True):
        waited.append(time.monotonic() - start)
    stop.set()
    for t in workers:
        t.join(10)
    assert waited and waited[0] < 1.0, waited


CONFTEST = '''
import importlib.util
spec = importlib.util.spec_from_file_location('suite_conftest', {path!r})
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
pytest_configure, pytest_unconfigure = suite.pytest_configure, suite.pytest_unconfigure
pytest_runtest_protocol = suite.pytest_runtest_protocol
'''
TIMED = '''
import os, time
import pytest

def record(name, seconds):
    start = time.monotonic()
    time.sleep(seconds)
    cores = ' '.join(map(str, sorted(os.sched_getaffinity(0))))
    with open(os.path.join({folder!r}, name), 'w') as f:
        f.write(f'{{start}} {{time.monotonic()}}|{{cores}}')
'''


@pytest.mark.whole_machine   # its inner run needs the cores (and the quiet) an outer -n 2 run would take
def test_the_suites_hooks_keep_a_whole_machine_test_alone_under_xdist(tmp_path):
    """The suite's own conftest hooks and marker, in a pytest -n 2 run of timed sleeps: no test beside the
    whole_machine one, which runs on every core, and each worker's other tests on its own cores."""
    folder = tmp_path / 'times'
    folder.mkdir()
    (tmp_path / 'conftest.py').write_text(CONFTEST.format(path=os.path.join(REPO_ROOT, 'tests', 'conftest.py')))
    (tmp_path / 'pytest.ini').write_text('[pytest]\nmarkers =\n    whole_machine: alone\n')
    (tmp_path / 'test_alone.py').write_text(TIMED.format(folder=str(folder)) + textwrap.dedent('''
        @pytest.mark.whole_machine
        def test_alone():
            record('alone', 1.0)
    '''))
    (tmp_path / 'test_shared.py').write_text(TIMED.format(folder=str(folder)) + textwrap.dedent('''
        @pytest.mark.parametrize('i', range(6))
        def test_shared(i):
            record(f'shared {i}', 0.4)
    '''))
    temp = tmp_path / 'temp'   # where the run's shared folder is made, and must be gone from afterwards
    temp.mkdir()
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-n', '2', '-p', 'no:cacheprovider', str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'TMPDIR': str(temp)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = {name: (folder / name).read_text().split('|') for name in os.listdir(folder)}
    held = {name: tuple(map(float, times.split())) for name, (times, _) in records.items()}
    cores = {name: tuple(map(int, on.split())) for name, (_, on) in records.items()}
    assert len(held) == 7
    # each worker on its own share of the cores (two or more here), the whole_machine test on all of them
    everything = tuple(sorted(os.sched_getaffinity(0)))
    assert cores['alone'] == everything
    halves = {cores[f'shared {i}'] for i in range(6)}
    if len(everything) >= 2:
        assert len(halves) == 2 and not set.intersection(*map(set, halves)), halves
        assert set.union(*map(set, halves)) == set(everything), halves
    shared = [held[f'shared {i}'] for i in range(6)]
    assert any(_overlap(a, b) for i, a in enumerate(shared) for b in shared[i + 1:]), 'two workers ran together'
    assert not any(_overlap(held['alone'], s) for s in shared)
    assert not [name for name in os.listdir(temp) if name.startswith('pimm-tests-machine-')]


def test_each_worker_gets_an_equal_slice_of_the_cores():
    assert machine_share.share_of_cores(0, 2, [3, 1, 0, 2]) == [0, 2]
    assert machine_share.share_of_cores(1, 2, [0, 1, 2, 3]) == [1, 3]
    assert machine_share.share_of_cores(0, 2, [0, 1, 2]) == [0, 2]     # every core used
    assert machine_share.share_of_cores(1, 2, [0, 1, 2]) == [1]
    assert machine_share.share_of_cores(1, 4, [0, 1]) == [0, 1]        # fewer cores than workers: all
