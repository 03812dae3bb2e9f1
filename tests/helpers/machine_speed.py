"""How fast this machine trains right now: a fixed piece of the quickstart's work (SGD steps of the demo's
supernet on one path, batch 32 at 32px, one math thread as ``import paddle`` sets) timed in a fresh process.
A wall-clock claim checked on a shared machine is checked as a ratio to this, taken beside it."""
import subprocess
import sys

from cli import REPO_ROOT

STEPS = 30
_WORK = f'''
import time, numpy as np, paddle
from Paddle_Cream.models.hypernet import HyperNet
paddle.seed(0)
net = HyperNet([1, 1, 3, 2, 1], 10, resolution=32)
net.train()
path = [[0], [3], [3], [3, 3, 3], [3, 3], [3], [0]]
opt = paddle.optimizer.Momentum(0.01, parameters=net.parameters())
x = paddle.to_tensor(np.random.RandomState(0).rand(32, 3, 32, 32).astype('float32'))
y = paddle.to_tensor(np.arange(32) % 10)
def step():
    loss = paddle.nn.functional.cross_entropy(net(x, path), y)
    loss.backward()
    opt.step()
    opt.clear_grad()
    return float(loss)
for _ in range(3):
    step()
start = time.perf_counter()
for _ in range({STEPS}):
    step()
print(time.perf_counter() - start)
'''


def training_seconds() -> float:
    """Seconds this machine takes now for the fixed training work above."""
    proc = subprocess.run([sys.executable, '-c', _WORK], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return float(proc.stdout.split()[-1])
