"""Loader worker processes die with their parent, however the parent dies (SIGKILL, SIGTERM)."""
import os
import select
import signal
import subprocess
import sys
import time

import pytest


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads process state from /proc')

# a training loop over a 2-worker persistent loader, run forever in a child python
_LOOP = r'''
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
if sys.argv[2] == 'watchdog':  # as where prctl is unavailable
    import pimm.data.worker_init as worker_init
    worker_init._set_parent_death_signal = lambda sig: False
from pimm.data import ImageDataset, create_loader, set_loader_epoch
for c in range(2):
    os.makedirs(os.path.join(root, f'c{c}'), exist_ok=True)
    for i in range(6):
        Image.new('RGB', (16, 16), (40 * i, 90 * c, 7)).save(os.path.join(root, f'c{c}', f'{i}.png'))
loader = create_loader(ImageDataset(root), 16, batch_size=2, is_training=True, num_workers=2)
epoch = 0
while True:
    set_loader_epoch(loader, epoch)
    for _ in loader:
        if epoch == 1:
            print('LOOPING', flush=True)
    epoch += 1
'''


def _children(pid):
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open(f'/proc/{name}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(name))
    return found


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return state not in ('Z', 'X')  # a zombie has exited: only its parent (now init) has not reaped it yet


def _start_loop(tmp_path, mode):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.Popen([sys.executable, '-c', _LOOP, str(tmp_path / 'data'), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)  # until the loop runs its second epoch
        assert ready and proc.stdout.readline().strip() == 'LOOPING', 'the loader loop did not start'
        workers = _children(proc.pid)
        assert len(workers) == 2, workers
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, workers


@pytest.mark.parametrize('mode', ['prctl', 'watchdog'])
@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM], ids=['SIGKILL', 'SIGTERM'])
def test_workers_exit_when_their_parent_is_killed(tmp_path, sig, mode):
    proc, workers = _start_loop(tmp_path, mode)
    try:
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        orphans = [w for w in workers if _alive(w)]
        assert not orphans, f'loader workers {orphans} outlived their parent by 10 s'
    finally:
        for w in workers:  # never leave orphans behind, whatever the outcome
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


# run in a fresh python that forks: forking this test process (paddle's threads, other tests' loaders) is fragile
_FORKED = r'''
import os, sys
from pimm.data.worker_init import die_with_parent
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    parent = -1 if sys.argv[1] == 'dead' else os.getppid()  # -1: the parent died before the signal was armed
    os.write(write, die_with_parent(parent, use_prctl=sys.argv[1] != 'watchdog').encode())
    os._exit(0)
os.close(write)
_, status = os.waitpid(pid, 0)
print(os.read(read, 100).decode() or '-', os.waitstatus_to_exitcode(status))
'''


@pytest.mark.parametrize('case, expected', [('dead', '- 1'), ('prctl', 'prctl 0'), ('watchdog', 'watchdog 0')])
def test_die_with_parent(case, expected):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-c', _FORKED, case], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.stdout.strip() == expected and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
