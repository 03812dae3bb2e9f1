"""tools/gpu_smoke_check.py: on a CPU it refuses in one line; its commands are valid configurations."""
import os
import shlex
import subprocess
import sys

import paddle
import pytest

from cli import REPO_ROOT
from Paddle_Cream.config import load_config

SCRIPT = os.path.join(REPO_ROOT, 'tools', 'gpu_smoke_check.py')


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_dry_run_commands_are_valid_configurations(tmp_path):
    proc = _run('--dry-run', '--workdir', str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    commands = [shlex.split(line)[2:] for line in proc.stdout.splitlines() if not line.startswith('#')]
    labels = [line for line in proc.stdout.splitlines() if line.startswith('#')]
    assert len(commands) == len(labels) == 7
    for mode, config, *overrides in commands:
        cfg = load_config(os.path.join(REPO_ROOT, config), overrides)  # unknown keys would raise
        assert mode in ('train', 'retrain', 'test', 'latency')
        if mode in ('train', 'retrain') and cfg.NUM_GPU > 1:
            assert cfg.AMP and cfg.BATCHNORM.SYNC_BN
        if mode == 'latency':   # what a CPU test cannot see: Paddle Inference on the GPU, with and without TensorRT
            assert cfg.LATENCY.GPU and cfg.LATENCY.RUNTIME == 'paddle' and cfg.LATENCY.VALIDATE > 0
    assert {load_config(os.path.join(REPO_ROOT, c), o).LATENCY.TENSORRT for m, c, *o in commands
            if m == 'latency'} == {'off', 'fp16'}


def test_on_a_cpu_build_the_environment_item_fails_in_one_line(tmp_path):
    if paddle.device.is_compiled_with_cuda():
        pytest.skip('this checks the message of a CPU build of Paddle')
    proc = _run('--workdir', str(tmp_path))
    assert proc.returncode == 1
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines == ['FAIL  environment: this Paddle is a CPU build: install the paddlepaddle-gpu matching your CUDA']


def test_one_gpu_is_refused():
    proc = _run('--gpus', '1', '--dry-run')
    assert proc.returncode == 2 and proc.stderr.startswith('error: --gpus must be at least 2')
