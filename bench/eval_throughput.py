#!/usr/bin/env python
"""Whole-evaluation throughput: ours (pimm data + Paddle) against timm + PyTorch, one run.

Both sides read the same JPEG folder with the same worker count and batch size
and do the same work: decode, resize + crop + normalise, forward, top-1/top-5.
Ours runs with each ``--inference`` value given (``auto``: the runtime tools/main.py test would
pick); the runner settles its runtime on a real first batch, timed apart as "first-batch setup".
Needs the dev requirements (torch, timm). Example:

    python bench/eval_throughput.py --model 14 --images 1000 --workers 2 --batch-size 100 --inference auto paddle
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
from PIL import Image  # noqa: E402

from pimm.inference.factory import INFERENCE_CHOICES  # noqa: E402


def make_images(root: str, count: int, classes: int = 10, seed: int = 0) -> None:
    """ImageNet-like JPEGs (500x375 and 375x500, smooth content plus noise) in class folders."""
    rng = np.random.RandomState(seed)
    for i in range(count):
        d = os.path.join(root, f'n{i % classes:08d}')
        os.makedirs(d, exist_ok=True)
        w, h = (500, 375) if i % 3 else (375, 500)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / rng.uniform(5, 60) + c) * np.cos(yy / rng.uniform(5, 60)) for c in range(3)], -1)
        img = (base * 90 + 128 + rng.randn(h, w, 3) * 12).clip(0, 255).astype('uint8')
        Image.fromarray(img).save(os.path.join(d, f'img_{i:05d}.JPEG'), quality=90)


def time_ours(folder, name, workers, batch_size, inference, fast_decode):
    import Paddle_Cream  # noqa: F401
    import pimm
    from pimm.data import ImageDataset, create_loader
    from Paddle_Cream.engine.evaluate import evaluate
    from pimm.inference import create_runner, threads_beside_loader
    model = pimm.create_model(f'cream_{name}')
    size = model.default_cfg['input_size'][-1]
    runner = create_runner(model, size, inference, threads_beside_loader(workers))  # as tools/main.py test
    settings = dict(num_workers=workers, crop_pct=0.875, interpolation='bicubic', fast_decode=fast_decode)
    # the runner settles on a real first batch (export, checks against dygraph, timing): timed apart
    first, _ = next(iter(create_loader(ImageDataset(folder), size, batch_size, **dict(settings, num_workers=0))))
    start = time.time()
    runner(first)
    setup = time.time() - start
    loader = create_loader(ImageDataset(folder), size, batch_size, **settings)
    metrics = evaluate(runner, loader, len(loader), show_progress=False)
    runner.close()
    return metrics['images'] / metrics['seconds'], setup, runner.name


def time_timm(folder, name, workers, batch_size):
    import timm.data
    import torch
    from timm_reference import build_timm_cream, published_table
    info = published_table()[name]
    model = build_timm_cream(info['arch']).eval()
    size = info['input_size']
    dataset = timm.data.ImageDataset(folder)
    loader = timm.data.create_loader(dataset, (3, size, size), batch_size, is_training=False, use_prefetcher=False,
                                     interpolation='bicubic', crop_pct=0.875, num_workers=workers)
    with torch.no_grad():
        model(torch.zeros(batch_size, 3, size, size))  # warm-up
        start, count, hits = time.time(), 0, np.zeros(2)
        for images, targets in loader:
            logits = model(images)
            top5 = logits.topk(5, 1).indices
            hits += [(top5[:, 0] == targets).sum().item(), (top5 == targets[:, None]).any(1).sum().item()]
            count += len(targets)
    return count / (time.time() - start)


def time_models_only(name, batch_size, inference, repeats=5):
    """Forward passes on a fixed batch: where the model's share of the time goes."""
    import paddle
    import torch
    import Paddle_Cream  # noqa: F401
    import pimm
    from pimm.inference import create_runner
    from timm_reference import build_timm_cream, published_table
    info = published_table()[name]
    size = info['input_size']
    x = np.random.RandomState(0).randn(batch_size, 3, size, size).astype('float32')
    model = pimm.create_model(f'cream_{name}')
    out = {}
    for kind in dict.fromkeys(['dygraph'] + list(inference)):
        run = create_runner(model, size, kind)
        run(x)   # settles the runtime
        start = time.time()
        for _ in range(repeats):
            run(x)
        out[f'paddle {kind}' + (f' ({run.name})' if kind == 'auto' else '')] = repeats * batch_size / (
            time.time() - start)
        run.close()
    ref = build_timm_cream(info['arch']).eval()
    xt = torch.from_numpy(x)
    with torch.no_grad():
        ref(xt)
        start = time.time()
        for _ in range(repeats):
            ref(xt)
    out['pytorch eager'] = repeats * batch_size / (time.time() - start)
    del paddle
    return out


def time_image_steps(folder: str, name: str, count: int = 200) -> dict:
    """Milliseconds per image on one core for each step of both sides' evaluation transform."""
    import timm.data
    from PIL import Image as PILImage
    from pimm.data import ImageDataset, create_transform
    from pimm.data.image_io import load_rgb
    from timm_reference import published_table
    size = published_table()[name]['input_size']
    paths = [p for p, _ in ImageDataset(folder).samples[:count]]
    out = {}

    def timed(label, fn, items):
        start = time.time()
        for item in items:  # results dropped, as in a loader worker: no side pays for holding them
            fn(item)
        out[label] = 1e3 * (time.time() - start) / len(items)
        return [fn(item) for item in items]  # untimed: the next step's input

    ours = create_transform(size, is_training=False, crop_pct=0.875, interpolation='bicubic')
    reference = timm.data.create_transform(size, is_training=False, interpolation='bicubic', crop_pct=0.875)
    for _ in range(2):  # the first pass warms up (allocator, decoder); the second is reported
        images = timed('ours: decode', load_rgb, paths)
        for step in ours.steps:
            images = timed(f'ours: {type(step).__name__}', step, images)
        images = timed('timm: decode', lambda p: PILImage.open(p).convert('RGB'), paths)
        for step in reference.transforms:
            images = timed(f'timm: {type(step).__name__}', step, images)
    return out


def measure_in_subprocess(side: str, folder: str, args) -> dict:
    """``{'rate': images/s, 'setup': s, 'runtime': name}`` of one whole evaluation by ``side`` (``timm``, or
    ``ours:KIND`` / ``fast:KIND`` with KIND an INFERENCE value), in a fresh process."""
    cmd = [sys.executable, os.path.abspath(__file__), '--measure', side, '--folder', folder, '--model', args.model,
           '--workers', str(args.workers), '--batch-size', str(args.batch_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(side: str, args) -> dict:
    if side == 'timm':
        return dict(rate=time_timm(args.folder, args.model, args.workers, args.batch_size), setup=0.0,
                    runtime='pytorch')
    pipeline, kind = side.split(':')
    rate, setup, runtime = time_ours(args.folder, args.model, args.workers, args.batch_size, kind,
                                     pipeline == 'fast')
    return dict(rate=rate, setup=setup, runtime=runtime)


def _label(side: str) -> str:
    if side == 'timm':
        return 'timm + PyTorch eager'
    pipeline, kind = side.split(':')
    return f'pimm + INFERENCE {kind}' + (', FAST_DECODE (approximate)' if pipeline == 'fast' else ' (exact)')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--folder', help='ImageNet-style folder of JPEGs (default: generate --images of them)')
    p.add_argument('--images', type=int, default=1000)
    p.add_argument('--model', default='14', choices=['14', '43', '114', '287', '481', '604'])
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=100)
    p.add_argument('--inference', nargs='+', default=['auto'], choices=list(INFERENCE_CHOICES),
                   help='the INFERENCE values to time (each a side of its own)')
    p.add_argument('--fast-decode', action='store_true', help='also time PIL draft() decoding (approximate)')
    p.add_argument('--repeats', type=int, default=3, help='interleaved runs per side; the median is reported')
    p.add_argument('--measure', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:  # one side, in the process measure_in_subprocess started
        print(json.dumps(measure(args.measure, args)))
        return
    tmp = None
    folder = args.folder
    if not folder:
        tmp = tempfile.TemporaryDirectory(prefix='eval_bench_')
        folder = tmp.name
        print(f'writing {args.images} JPEGs to {folder} ...', flush=True)
        make_images(folder, args.images)
    n_images = sum(len(files) for _, _, files in os.walk(folder))
    sides = ['timm'] + [f'ours:{kind}' for kind in args.inference] + (
        [f'fast:{kind}' for kind in args.inference] if args.fast_decode else [])
    # Each measurement runs in a fresh process (no thread pools, caches or imports left
    # over from the other side), and the sides alternate so that a burst of load on the
    # machine hits both alike; each side's median is reported.
    samples = {side: [] for side in sides}
    for i in range(args.repeats):
        for side in sides:
            samples[side].append(measure_in_subprocess(side, folder, args))
        print(f'repeat {i + 1}/{args.repeats}: ' + ', '.join(f"{k} {v[-1]['rate']:.1f} img/s"
                                                              for k, v in samples.items()), flush=True)
    rate = {side: float(np.median([v['rate'] for v in values])) for side, values in samples.items()}
    setup = {side: float(np.median([v['setup'] for v in values])) for side, values in samples.items()}
    print(f'\nCream-{args.model}, {n_images} images, {args.workers} workers, batch {args.batch_size}, '
          f'{os.cpu_count()} CPU cores, median of {args.repeats} alternating runs, one process each')
    print('| whole evaluation | runtime served | images/s | vs timm | first-batch setup |\n|---|---|---|---|---|')
    for side in sides:
        served = sorted({v['runtime'] for v in samples[side]})
        print(f"| {_label(side)} | {', '.join(served)} | {rate[side]:.1f} | {rate[side] / rate['timm']:.2f}x | "
              f'{setup[side]:.1f} s |')
    steps = time_image_steps(folder, args.model)
    print('\n| per image, one core | ms |\n|---|---|')
    for label, ms in steps.items():
        print(f'| {label} | {ms:.2f} |')
    models = time_models_only(args.model, args.batch_size, args.inference)
    print('\n| model only (fixed batch) | images/s | vs PyTorch |\n|---|---|---|')
    for label, speed in models.items():
        print(f"| {label} | {speed:.1f} | {speed / models['pytorch eager']:.2f}x |")


if __name__ == '__main__':
    main()
