#!/usr/bin/env python
"""Cost of one Cream supernet iteration against a plain uniform-sampling (SPOS-like) one, one run;
with ``--host``, the host-side work of an iteration before and after its fusion (bench/host_overhead.py).

On one hypernetwork and one random batch, after warm-up, times (median over repeats):
 (a) plain: path sample, forward, CE, backward, optimizer step (SupernetStep, method 'spos');
 (b) Cream with a full board (POOL_SIZE entries pre-filled) and PICK_METHOD meta: path sample,
     teacher choice (one batched scoring forward), student + teacher forward, backward, step,
     board update; no meta-matching update;
 (c) one meta-matching update alone (MetaMatcher.meta_step on the first two slices).
(a) and (b) draw the same path sequence (same sampler seed, 'even' choice probabilities).
Teacher selection is timed inside (b); the teacher forward (no_grad) is timed on its own.
Example:

    python bench/search_step.py --batch-size 32 --image-size 32 --num-classes 1000 --repeats 5 --iters 10
    python bench/search_step.py --host        # the paper's [4,4,4,4,4] at batch 128 and the demo's
"""
import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('GLOG_minloglevel', '2')

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from pimm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy  # noqa: E402
from pimm.optim import create_optimizer  # noqa: E402
from Paddle_Cream.models.hypernet import HyperNet  # noqa: E402
from Paddle_Cream.search import MetaMatcher, PathSampler, PrioritizedBoard, search_for_layer  # noqa: E402
from Paddle_Cream.search.flops_table import PathFlops  # noqa: E402
from Paddle_Cream.search.supernet_step import SearchSettings, SupernetStep  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--flops-min', type=float, default=0.)
    p.add_argument('--flops-max', type=float, default=200.)
    p.add_argument('--num-classes', type=int, default=10, choices=(10, 1000))
    p.add_argument('--image-size', type=int, default=32)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--pool-size', type=int, default=10)
    p.add_argument('--slice', type=int, default=4)
    p.add_argument('--warmup', type=int, default=3, help='iterations of each kind before timing')
    p.add_argument('--iters', type=int, default=10, help='iterations per repeat')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--profile', action='store_true', help='also print a cProfile of (b)')
    p.add_argument('--host', action='store_true', help='host-side ms per iteration, before and after, instead')
    p.add_argument('--real-size', action='store_true', help='with --host: also the real tensors on this CPU')
    return p.parse_args()


class Timed:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def build(args):
    paddle.seed(0)
    sta_num, resolution = search_for_layer(args.flops_min, args.flops_max)
    net = HyperNet(sta_num, args.num_classes, resolution=args.image_size)
    flops = PathFlops(net, resolution).flops
    net.train()
    opt = create_optimizer(net, opt='sgd', lr=0.05, weight_decay=1e-4, momentum=0.9, filter_bias_and_bn=True,
                           fused_units=net.units())
    ce, kd = LabelSmoothingCrossEntropy(0.1), SoftTargetCrossEntropy()

    def sampler():  # (a), (b) and (c) each get their own, same seed: the same path sequence
        return PathSampler(sta_num, flops, args.flops_min, args.flops_max, how_to_prob='even', seed=1)
    rng = np.random.RandomState(0)
    x = paddle.to_tensor(rng.randn(args.batch_size, 3, args.image_size, args.image_size).astype('float32'))
    y = paddle.to_tensor(rng.randint(0, args.num_classes, args.batch_size).astype('int64'))
    board = PrioritizedBoard(args.pool_size)
    filler = PathSampler(sta_num, flops, args.flops_min, args.flops_max, seed=2)
    for i in range(args.pool_size):
        path, f = filler.sample()
        soft = rng.dirichlet(np.ones(args.num_classes), args.slice).astype('float32')
        board.admit(50. + i, f, path, rng.randn(args.slice, 3, args.image_size, args.image_size), soft)
    matcher = MetaMatcher(args.num_classes, args.slice)
    plain = SupernetStep(net, opt, sampler(), SearchSettings(method='spos'), ce, kd)
    settings = SearchSettings(method='cream', pick_method='meta', meta_sta_epoch=0, update_iter=10 ** 9,
                              slice_size=args.slice)
    cream = SupernetStep(net, opt, sampler(), settings, ce, kd, board, matcher)
    return dict(net=net, x=x, y=y, board=board, matcher=matcher, plain=plain, cream=cream, sta_num=sta_num,
                sampler=sampler())


def host_tables(real_size: bool) -> None:
    from host_overhead import measure_amp_step, measure_host_overhead
    cases = [('paper [4,4,4,4,4], 1000 classes, batch 128', [4, 4, 4, 4, 4], 1000, 128, 224),
             ('demo [1,1,2,1,1], 10 classes, batch 32', [1, 1, 2, 1, 1], 10, 32, 32)]
    for title, sta, classes, batch, image in cases:
        for one in (True, False) if real_size else (True,):
            r = measure_host_overhead(sta, classes, batch, image, one_element=one)
            what = 'host-side (1-element replica)' if one else f'real tensors on this CPU ({image}px)'
            print(f'\n{title}: {what}, ms per iteration (median of 5 x 20)\n')
            print('| phase | before | after | before / after |\n|---|---:|---:|---:|')
            for phase in ('ema', 'optimizer', 'board', 'syncs'):
                b, a = r['before'][phase], r['after'][phase]
                print(f'| {phase} | {b:.2f} | {a:.2f} | {b / a:.1f}x |')
            b3 = sum(r['before'][k] for k in ('ema', 'optimizer', 'board'))
            a3 = sum(r['after'][k] for k in ('ema', 'optimizer', 'board'))
            print(f'| EMA + optimizer + board | {b3:.2f} | {a3:.2f} | {b3 / a3:.1f}x |')
            print(f"| device-to-host copies | {r['before']['device_to_host_copies']} | "
                  f"{r['after']['device_to_host_copies']} | |")
            if one:
                print(f"goal EMA + optimizer + board < 3 ms: {'met' if a3 < 3 else 'NOT met'}; at most one "
                      f"device-to-host copy: {'met' if r['after']['device_to_host_copies'] <= 1 else 'NOT met'}")
        amp = measure_amp_step(sta, classes)
        p, d = amp['paddle'], amp['device']
        print(f'\n{title}: AMP (float16) step after the backward, host-side (1-element replica)\n')
        print('| loss scaler | ms | device-to-host copies |\n|---|---:|---:|')
        print(f"| Paddle's GradScaler path (previous) | {p['ms']:.2f} | {p['device_to_host_copies']} |")
        print(f"| pimm GradScaler + FusedSGD (device-side skip) | {d['ms']:.2f} | {d['device_to_host_copies']} |")
        copies = r['after']['device_to_host_copies'] + d['device_to_host_copies']
        print(f"ratio {p['ms'] / d['ms']:.1f}x; device-to-host copies of an AMP iteration: {copies} "
              f"(goal at most one: {'met' if copies <= 1 else 'NOT met'})")


def main():
    args = parse_args()
    if args.host:
        host_tables(args.real_size)
        return
    b = build(args)
    net, x, y, board, matcher, n = b['net'], b['x'], b['y'], b['board'], b['matcher'], args.slice
    cream, plain = b['cream'], b['plain']
    select = matcher.score_slices = Timed(matcher.score_slices)
    teacher = board.best()
    teacher_probs = paddle.nn.functional.softmax(net(x[:n], teacher.path), -1).detach()
    it = [0]

    def run_a():
        plain(x, y, epoch=1, iteration=it[0], lr=0.05)

    def run_b():
        cream(x, y, epoch=1, iteration=it[0], lr=0.05)

    def run_c():
        path, _ = b['sampler'].sample()
        matcher.meta_step(net, path, teacher, teacher_probs, x[:n], x[n:2 * n], y[n:2 * n], student_lr=0.05,
                          meta_lr=1e-4)

    def run_t():  # the teacher forward alone: a board path, no gradient
        with paddle.no_grad():
            net(x, board.entries[it[0] % len(board)].path)

    kinds = dict(a=run_a, b=run_b, c=run_c, t=run_t)
    for fn in kinds.values():
        for _ in range(args.warmup):
            fn()
    times = {k: [] for k in kinds}
    sel_ms = []
    for _ in range(args.repeats):
        for k, fn in kinds.items():  # interleaved, so drift hits all kinds alike
            select.seconds = 0.
            start = time.perf_counter()
            for i in range(args.iters):
                it[0] = i
                fn()
            times[k].append((time.perf_counter() - start) * 1e3 / args.iters)
            if k == 'b':
                sel_ms.append(select.seconds * 1e3 / args.iters)
    med = {k: statistics.median(v) for k, v in times.items()}
    sel = statistics.median(sel_ms)
    print(f'hypernet sta_num {b["sta_num"]}, {args.num_classes} classes, batch {args.batch_size} x '
          f'{args.image_size}px, board {len(board)}/{args.pool_size}, slice {n}, '
          f'{args.repeats} repeats x {args.iters} iters (median)\n')
    print('| iteration | ms / iter | x plain |\n|---|---:|---:|')
    print(f"| (a) plain (SPOS-like) | {med['a']:.1f} | 1.00 |")
    print(f"| (b) Cream, full board, meta pick | {med['b']:.1f} | {med['b'] / med['a']:.2f} |")
    print(f"| (c) meta-matching update alone | {med['c']:.1f} | {med['c'] / med['a']:.2f} |")
    extra = med['b'] - med['a']
    print(f"\nof (b): teacher selection {sel:.1f} ms ({100 * sel / med['b']:.0f}%), teacher forward "
          f"{med['t']:.1f} ms ({100 * med['t'] / med['b']:.0f}%); together {sel + med['t']:.1f} ms of the "
          f"{extra:.1f} ms Cream adds over (a)")
    print(f"goal (b)/(a) <= 1.6: {'met' if med['b'] / med['a'] <= 1.6 else 'NOT met'}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for i in range(args.iters):
            it[0] = i
            run_b()
        prof.disable()
        pstats.Stats(prof).sort_stats('tottime').print_stats(25)


if __name__ == '__main__':
    main()
