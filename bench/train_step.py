#!/usr/bin/env python
"""Training speed on CPU, side by side in one run: Paddle before, Paddle after, PyTorch eager (timm).

A train step is forward + label-smoothed cross-entropy + backward + SGD Nesterov step, from the
same random weights and batch on every side. "Paddle before" is this port with Paddle's own
depthwise kernel and Paddle's default of one math thread in dygraph (what the loops ran with
before); "Paddle after" is what ``train`` and ``retrain`` now run: the dense depthwise path for
small maps (``pimm.models.layers.depthwise_conv``) and every core for math. Each measurement runs
in a fresh process and the sides alternate; medians are reported with the ratios. Needs the dev
requirements (torch, timm). Example:

    python bench/train_step.py                      # cream_14 at batch 128, cream_114 at batch 32
    python bench/train_step.py --demo-epochs        # also the demo search's seconds per epoch
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'helpers'))
os.environ.setdefault('GLOG_minloglevel', '2')

import numpy as np  # noqa: E402

SIDES = ('paddle_before', 'paddle_after', 'torch')
LABELS = {'paddle_before': 'Paddle dygraph, before', 'paddle_after': 'Paddle dygraph, after',
          'torch': 'PyTorch eager (timm)'}


def _batch(size: int, batch: int, classes: int = 1000):
    rng = np.random.RandomState(0)
    return rng.randn(batch, 3, size, size).astype('float32'), rng.randint(0, classes, batch).astype('int64')


def _images_per_second(loss_of_batch, step, zero_grad, batch: int, steps: int) -> float:
    """Images/s of ``steps`` train steps after one warm-up step (memory allocated, index maps built)."""
    def train_step():
        loss = loss_of_batch()
        loss.backward()
        step()
        zero_grad()
        return float(loss)  # waits for the step, as a training loop reading its loss does
    train_step()
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    return batch * steps / (time.perf_counter() - start)


def time_paddle(model: str, batch: int, size: int, steps: int, after: bool) -> float:
    import paddle
    import Paddle_Cream  # noqa: F401
    import pimm
    import pimm.models.layers.depthwise_conv as depthwise
    from pimm.loss import LabelSmoothingCrossEntropy
    from pimm.utils.threads import use_all_cores
    if after:
        use_all_cores()
    else:
        depthwise.DENSE_PAIRS_PER_TAP = 0
    net = pimm.create_model(f'cream_{model}')
    net.train()
    opt = paddle.optimizer.Momentum(0.01, momentum=0.9, use_nesterov=True, parameters=net.parameters())
    loss_fn = LabelSmoothingCrossEntropy(0.1)
    images, labels = _batch(size, batch)
    x, y = paddle.to_tensor(images), paddle.to_tensor(labels)

    return _images_per_second(lambda: loss_fn(net(x), y), opt.step, opt.clear_grad, batch, steps)


def time_torch(model: str, batch: int, size: int, steps: int) -> float:
    import torch
    from timm.loss import LabelSmoothingCrossEntropy
    from timm_reference import build_timm_cream, published_table
    torch.set_num_threads(os.cpu_count() or 1)
    net = build_timm_cream(published_table()[model]['arch']).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = LabelSmoothingCrossEntropy(0.1)
    images, labels = _batch(size, batch)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)

    return _images_per_second(lambda: loss_fn(net(x), y), opt.step, opt.zero_grad, batch, steps)


def time_demo_epoch(after: bool, epochs: int) -> float:
    """Seconds per epoch of ``tools/main.py train configs/demo/train.yaml`` (from its summary)."""
    import pimm.models.layers.depthwise_conv as depthwise
    from pimm.utils.threads import use_all_cores
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    if after:
        use_all_cores()
    else:
        depthwise.DENSE_PAIRS_PER_TAP = 0
    from Paddle_Cream.config import load_config
    from Paddle_Cream.engine.run_train import run_train
    with tempfile.TemporaryDirectory(prefix='demo_bench_') as out:
        cfg = load_config(os.path.join(ROOT, 'configs', 'demo', 'train.yaml'),
                          ['SAVE_PATH', out, 'EPOCHS', str(epochs), 'DATA_DIR', os.path.join(ROOT, 'data', 'digits')])
        start = time.perf_counter()
        run_train(cfg)
        return (time.perf_counter() - start) / epochs


def _input_size(model: str) -> int:
    with open(os.path.join(ROOT, 'Paddle_Cream', 'data', 'cream_published_models.json')) as f:
        return int(json.load(f)['models'][model]['input_size'])


def measure(args) -> float:
    side, what = args.measure, args.what
    if what == 'demo':
        return time_demo_epoch(side == 'paddle_after', args.epochs)
    model, batch = what.split(':')
    size = _input_size(model)
    if side == 'torch':
        return time_torch(model, int(batch), size, args.steps)
    return time_paddle(model, int(batch), size, args.steps, side == 'paddle_after')


def in_subprocess(side: str, what: str, args) -> float:
    cmd = [sys.executable, os.path.abspath(__file__), '--measure', side, '--what', what, '--steps', str(args.steps),
           '--epochs', str(args.epochs)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', default='14:128,114:32', help='model:batch pairs, comma separated')
    p.add_argument('--steps', type=int, default=3, help='timed steps after one warm-up step')
    p.add_argument('--repeats', type=int, default=3, help='alternating runs per side; the median is reported')
    p.add_argument('--demo-epochs', action='store_true', help='also time the demo search (Paddle sides only)')
    p.add_argument('--epochs', type=int, default=2, help='demo search epochs per measurement')
    p.add_argument('--measure', choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument('--what', help=argparse.SUPPRESS)
    p.add_argument('--json', help='also write the medians to this JSON file')
    args = p.parse_args()
    if args.measure:
        print(measure(args))
        return
    results = {}
    for what in args.models.split(','):
        samples = {side: [] for side in SIDES}
        for i in range(args.repeats):
            for side in SIDES:
                samples[side].append(in_subprocess(side, what, args))
            print(f'{what} repeat {i + 1}/{args.repeats}: '
                  + ', '.join(f'{s} {v[-1]:.1f} img/s' for s, v in samples.items()), flush=True)
        results[what] = {side: float(np.median(v)) for side, v in samples.items()}
    if args.demo_epochs:
        samples = {side: [] for side in SIDES[:2]}
        for i in range(args.repeats):
            for side in samples:
                samples[side].append(in_subprocess(side, 'demo', args))
            print(f'demo repeat {i + 1}/{args.repeats}: '
                  + ', '.join(f'{s} {v[-1]:.1f} s/epoch' for s, v in samples.items()), flush=True)
        results['demo'] = {side: float(np.median(v)) for side, v in samples.items()}

    print(f'\n{os.cpu_count()} CPU cores, each model at its published input size, median of {args.repeats} alternating runs, one process each')
    print('| train step, images/s | Paddle before | Paddle after | PyTorch eager (timm) | after / before '
          '| after / PyTorch |\n|---|---|---|---|---|---|')
    for what, r in results.items():
        if what == 'demo':
            continue
        model, batch = what.split(':')
        print(f"| cream_{model}, batch {batch} | {r['paddle_before']:.1f} | {r['paddle_after']:.1f} | "
              f"{r['torch']:.1f} | {r['paddle_after'] / r['paddle_before']:.2f}x | "
              f"{r['paddle_after'] / r['torch']:.2f}x |")
    if 'demo' in results:
        r = results['demo']
        print(f"\n| demo search (configs/demo/train.yaml), s/epoch | Paddle before | Paddle after | speed-up |\n"
              f"|---|---|---|---|\n| {args.epochs} epochs per run | {r['paddle_before']:.1f} | "
              f"{r['paddle_after']:.1f} | {r['paddle_before'] / r['paddle_after']:.2f}x |")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
