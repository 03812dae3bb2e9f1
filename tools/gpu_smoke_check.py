#!/usr/bin/env python
"""A first run on a new GPU node: a few iterations of every mode on 2 GPUs, each item PASS or FAIL.

    python tools/gpu_smoke_check.py [--gpus 2] [--workdir DIR] [--dry-run]

On the digits demo data (written to the work folder): the environment (CUDA build, visible GPUs,
NCCL, /dev/shm), the Cream search with AMP and SyncBN on --gpus processes (identical boards on every
rank), its resume, the retrain of what it found with AMP and SyncBN, the test of the retrained network
across processes, a one-GPU search with AMP, and latency tables measured with Paddle Inference on GPU 0
(plain and TensorRT fp16); then the mechanisms CPU tests can only check with stand-ins
(tools/gpu_smoke_worker.py): an fp16 overflow followed by applied steps, BatchNorm and SyncBatchNorm
running statistics against PyTorch's formula, rank 0's teacher on every rank. Exit status 0 when every
item passes. ``--dry-run`` prints the commands without running them (works anywhere).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, 'tools', 'main.py')
# a search whose board fills and whose meta layer updates within 2 short epochs
SEARCH = ['EPOCHS', '2', 'DATASET.BATCH_SIZE', '16', 'SUPERNET.FLOPS_MINIMUM', '0', 'SUPERNET.FLOPS_MAXIMUM', '150',
          'SUPERNET.META_STA_EPOCH', '0', 'SUPERNET.UPDATE_ITER', '3', 'SUPERNET.POOL_SIZE', '3', 'WORKERS', '2']
# a latency table of the smallest hypernetwork ([1, 1, 1, 1, 1] at 160px) with a short validation
LATENCY = ['SUPERNET.FLOPS_MINIMUM', '0', 'SUPERNET.FLOPS_MAXIMUM', '40', 'LATENCY.GPU', 'True',
           'LATENCY.RUNTIME', 'paddle', 'LATENCY.VALIDATE', '10', 'LATENCY.CALIBRATE', '4']


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--gpus', type=int, default=2, help='processes for the multi-GPU items (at least 2)')
    p.add_argument('--workdir', default='', help='keep data and runs here (default: a temporary folder, removed)')
    p.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    return p.parse_args()


def _commands(work: str, gpus: int) -> List[Tuple[str, List[str]]]:
    data, out = os.path.join(work, 'digits'), os.path.join(work, 'output')
    common = ['DATA_DIR', data, 'SAVE_PATH', out]
    search_dir = os.path.join(out, '*-smoke_search')
    arch = os.path.join(search_dir, 'best_arch.json')
    best = os.path.join(out, '*-smoke_retrain', 'model_best.pdparams')
    gpu = ['NUM_GPU', str(gpus), 'AMP', 'True', 'BATCHNORM.SYNC_BN', 'True']
    return [
        (f'search on {gpus} GPUs, AMP + SyncBN', ['train', 'configs/demo/train.yaml', *common, *SEARCH, *gpu,
                                                   'MODEL', 'smoke_search']),
        ('search resumed (AUTO_RESUME, one more epoch)', ['train', 'configs/demo/train.yaml', *common, *SEARCH, *gpu,
                                                          'MODEL', 'smoke_search', 'EPOCHS', '3',
                                                          'AUTO_RESUME', 'True']),
        (f'retrain on {gpus} GPUs, AMP + SyncBN', ['retrain', 'configs/demo/retrain.yaml', *common, *gpu,
                                                   'NET.ARCH_FILE', arch, 'EPOCHS', '1', 'WORKERS', '2',
                                                   'MODEL', 'smoke_retrain']),
        (f'test on {gpus} GPUs', ['test', 'configs/demo/test.yaml', *common, 'NUM_GPU', str(gpus),
                                  'NET.ARCH_FILE', arch, 'RESUME_PATH', best, 'INFERENCE', 'dygraph',
                                  'MODEL', 'smoke_test']),
        ('search on 1 GPU, AMP', ['train', 'configs/demo/train.yaml', *common, *SEARCH, 'EPOCHS', '1', 'AMP', 'True',
                                  'MODEL', 'smoke_search_1gpu']),
        ('latency table, Paddle Inference on GPU 0', ['latency', 'configs/latency.yaml', 'SAVE_PATH', out, *LATENCY,
                                                      'MODEL', 'smoke_latency_gpu']),
        ('latency table, TensorRT fp16', ['latency', 'configs/latency.yaml', 'SAVE_PATH', out, *LATENCY,
                                          'LATENCY.TENSORRT', 'fp16', 'MODEL', 'smoke_latency_trt']),
    ]


# the mechanism items of tools/gpu_smoke_worker.py: (label, item, processes)
WORKER = os.path.join(ROOT, 'tools', 'gpu_smoke_worker.py')
MECHANISMS = [
    ('AMP: a forced fp16 overflow, then applied steps (fused storage intact)', 'overflow', 1),
    ("BatchNorm2d running statistics after one GPU step = PyTorch's", 'bn_variance', 1),
    ("SyncBatchNorm on 2 ranks, different data: equal statistics = PyTorch's", 'sync_bn', 2),
    ("every rank trains with rank 0's teacher (scores differ by rank)", 'teacher', 2),
]
WORKER_TIMEOUT = 600   # s; a rank that failed alone could leave the other waiting in a collective


def _worker_command(item: str, processes: int, out: str, logs: str) -> List[str]:
    launch = [sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', str(processes),
              '--log_dir', logs] if processes > 1 else [sys.executable]
    return [*launch, WORKER, item, out]


def _run_mechanism(item: str, processes: int, work: str) -> Optional[str]:
    """What went wrong with one worker item (None: it passed)."""
    out = os.path.join(work, f'{item}.json')
    cmd = _worker_command(item, processes, out, os.path.join(work, f'{item}_logs'))
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f'no answer within {WORKER_TIMEOUT}s (a rank waiting in a collective?)'
    if not os.path.isfile(out):
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        return f'exit {proc.returncode}, no result: {lines[-1] if lines else "no output"}'
    with open(out) as f:
        result = json.load(f)
    return None if result['ok'] else result['detail']


def _expand(args: List[str]) -> List[str]:
    """Globs (the dated run folders) resolved at the time the command runs."""
    out = []
    for a in args:
        found = sorted(glob.glob(a)) if '*' in a else []
        out.append(found[-1] if found else a)
    return out


def _environment(gpus: int) -> Tuple[bool, str]:
    import paddle
    if not paddle.device.is_compiled_with_cuda():
        return False, 'this Paddle is a CPU build: install the paddlepaddle-gpu matching your CUDA'
    count = paddle.device.cuda.device_count()
    if count < gpus:
        return False, f'{count} GPU(s) visible, --gpus {gpus} needs {gpus}'
    shm = shutil.disk_usage('/dev/shm').free / 2 ** 30 if os.path.isdir('/dev/shm') else float('nan')
    nccl = getattr(paddle.version, 'nccl', lambda: '?')()
    note = f'{count} GPU(s), CUDA {paddle.version.cuda()}, cuDNN {paddle.version.cudnn()}, NCCL {nccl}, ' \
           f'/dev/shm {shm:.1f} GB free'
    if shm == shm and shm < 0.4 * gpus:   # the paper's search needs about 0.33 GB a rank (docs/gpus.md)
        return False, note + f': below {0.4 * gpus:.1f} GB, loader workers will fail (docker run --shm-size=4g)'
    return True, note


def _check_run(label: str, work: str, proc: subprocess.CompletedProcess) -> Optional[str]:
    """What went wrong with a finished item (None: it passed)."""
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        return f'exit {proc.returncode}: {lines[-1] if lines else "no output"}'
    out = os.path.join(work, 'output')
    if label.startswith('search on') and 'GPUs' in label:
        digests = {}
        for log in glob.glob(os.path.join(glob.escape(out), '*-smoke_search', 'train_launch_logs', 'workerlog.*')):
            with open(log) as f:
                digests[log] = [line.split('board digest ')[1].strip() for line in f if 'board digest' in line]
        if len(digests) < 2 or len({tuple(d) for d in digests.values()}) != 1:
            return f'the ranks hold different boards: {digests}'
    if label.startswith('search resumed') and 'resumed from' not in proc.stdout:
        return 'did not resume'
    if label.startswith('latency'):
        model = 'smoke_latency_trt' if 'TensorRT' in label else 'smoke_latency_gpu'
        tables = glob.glob(os.path.join(glob.escape(out), f'*-{model}', 'latency_table.json'))
        if not tables:
            return 'exited 0 but wrote no latency_table.json'
        with open(tables[0]) as f:
            table = json.load(f)
        valid, check = table['valid_for'], table.get('validation') or {}
        if not valid['gpu']:
            return f"measured on {valid['device']}, not the GPU"
        if not check.get('paths'):
            return 'no validation'
        return None if check['within_10_percent'] >= 0.8 else \
            f"only {100 * check['within_10_percent']:.0f}% of validation paths within +-10% (see the table's PNG)"
    if label.startswith('test'):
        results = glob.glob(os.path.join(glob.escape(out), '*-smoke_test', 'results.json'))
        if not results:
            return 'exited 0 but wrote no results.json'
        with open(results[0]) as f:
            images = json.load(f)['images']
        if images <= 0:
            return 'no image evaluated'
    return None


def main() -> int:
    args = _args()
    if args.gpus < 2:
        print('error: --gpus must be at least 2 (SyncBN and NCCL need two processes)', file=sys.stderr)
        return 2
    work = args.workdir or tempfile.mkdtemp(prefix='cream_smoke_')
    commands = _commands(work, args.gpus)
    if args.dry_run:
        for label, cmd in commands:
            print(f'# {label}\n{sys.executable} {MAIN} {" ".join(cmd)}')
        for label, item, processes in MECHANISMS:
            out = os.path.join(work, f'{item}.json')
            print(f'# {label}\n{" ".join(_worker_command(item, processes, out, os.path.join(work, "logs")))}')
        return 0
    ok, note = _environment(args.gpus)
    print(f"{'PASS' if ok else 'FAIL'}  environment: {note}", flush=True)
    if not ok:
        return 1
    failures = 0
    for label, cmd in commands:
        start = time.time()
        proc = subprocess.run([sys.executable, MAIN, *_expand(cmd)], cwd=ROOT, capture_output=True, text=True)
        problem = _check_run(label, work, proc)
        failures += problem is not None
        print(f"{'PASS' if problem is None else 'FAIL'}  {label} ({time.time() - start:.0f}s)"
              + ('' if problem is None else f': {problem}'), flush=True)
    for label, item, processes in MECHANISMS:
        start = time.time()
        problem = _run_mechanism(item, processes, work)
        failures += problem is not None
        print(f"{'PASS' if problem is None else 'FAIL'}  {label} ({time.time() - start:.0f}s)"
              + ('' if problem is None else f': {problem}'), flush=True)
    total = len(commands) + len(MECHANISMS) + 1
    print(f"{total - failures}/{total} passed; runs in {work}")
    if not args.workdir and failures == 0:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
