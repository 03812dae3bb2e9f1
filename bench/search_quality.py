#!/usr/bin/env python
"""Does the search find good architectures? Cream's choice against SPOS + evolution and random paths.

One command runs, through ``tools/main.py`` exactly as a user would (so ``--set NUM_GPU 8`` and a
subImageNet ``DATA_DIR`` run it at the paper's scale):

1. ``train`` with the Cream recipe -> the Cream supernet and its ``best_arch.json``;
2. ``train`` with ``SUPERNET.METHOD spos``, then ``evolve`` on it -> the SPOS choice;
3. ``--random-paths`` paths drawn uniformly among those inside the same FLOPs budget;
4. every path's inherited top-1 under both supernets, BN recomputed per path (``evolve``/``rank``'s
   :class:`~Paddle_Cream.engine.path_eval.PathEvaluator` and score config);
5. ``retrain`` of every path from scratch with the retrain recipe, once per seed.

It prints a table (path, MFLOPs, inherited top-1, retrained top-1 mean +- std), Kendall's tau of
inherited against retrained top-1 over all paths for each supernet, and writes ``search_quality.json``,
``search_quality.md`` and ``search_quality.png`` in ``--out``. Example (the table in docs/search.md):

    python bench/search_quality.py --out ./output/search_quality
"""
import argparse
import json
import os
import sys
import time
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('GLOG_minloglevel', '2')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # bench/'s shared helpers, also when imported
from _runs import run_mode  # noqa: E402


def final_top1(run_dir: str) -> float:
    """The last epoch's val top-1 of a retrain run (its summary.csv)."""
    from Paddle_Cream.engine.summary import read_summary
    rows = read_summary(os.path.join(run_dir, 'summary.csv'))
    if not rows:
        sys.exit(f'error: {run_dir}/summary.csv has no epoch')
    return float(rows[-1]['eval_top1'])


def random_paths(flops_of, ident, score_cfg, count: int, seed: int, exclude: List[str]) -> List[List[List[int]]]:
    """``count`` distinct paths drawn uniformly among the hypernetwork's paths inside the budget
    (``flops_of``: the path FLOPs of the supernet whose search identity is ``ident``)."""
    from Paddle_Cream.engine.path_eval import flops_limit
    from Paddle_Cream.search.sampler import PathSampler
    sampler = PathSampler(ident['sta_num'], flops_of, score_cfg.SUPERNET.FLOPS_MINIMUM, flops_limit(score_cfg),
                          how_to_prob='even', seed=seed)
    paths, seen = [], set(exclude)
    for _ in range(1000 * count):
        path, _ = sampler.sample()
        if str(path) not in seen:
            seen.add(str(path))
            paths.append(path)
        if len(paths) == count:
            return paths
    sys.exit(f'error: the budget holds fewer than {count} paths besides the two choices')


def inherited_top1(checkpoint: str, score_cfg, paths) -> List[float]:
    """Each path's val top-1 with the supernet's weights and its own recomputed BN statistics."""
    from Paddle_Cream.engine.path_eval import PathEvaluator, fixed_loaders, load_search_checkpoint
    hypernet, ident = load_search_checkpoint(score_cfg, checkpoint)
    bn_loader, val_loader = fixed_loaders(score_cfg, int(ident['image_size']))
    evaluator = PathEvaluator(hypernet, bn_loader, val_loader)
    return [float(evaluator.score(p)['top1']) for p in paths]


def _arch_file(out: str, label: str, path) -> str:
    from Paddle_Cream.engine.output import write_json_atomic
    file = os.path.join(out, f'arch_{label}.json')
    write_json_atomic({'arch': path}, file)
    return file


def _tau(x: Sequence[float], y: Sequence[float]):
    from Paddle_Cream.search.rank_correlation import kendall_tau
    tau = kendall_tau(x, y)
    return None if np.isnan(tau) else float(tau)


def plot(rows: List[Dict], result: Dict, file: str) -> None:
    from Paddle_Cream.engine.plots import plot_labelled_errorbars
    plot_labelled_errorbars(
        [r['inherited_top1_cream'] for r in rows], [r['retrained_mean'] for r in rows],
        [r['retrained_std'] for r in rows], [r['label'] for r in rows], file,
        'inherited top-1 under the Cream supernet (%, BN recomputed)', 'retrained top-1 (%, mean +- std)',
        f"Kendall tau: Cream supernet {_fmt(result['kendall_tau_cream'])}, "
        f"SPOS supernet {_fmt(result['kendall_tau_spos'])}")


def _fmt(v) -> str:
    return 'n/a' if v is None else f'{v:.2f}'


def table(rows: List[Dict], seeds: Sequence[int]) -> str:
    lines = ['| path | architecture | MFLOPs | inherited top-1, Cream supernet | inherited top-1, SPOS supernet '
             f'| retrained top-1 ({len(seeds)} seeds) |', '|---|---|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['label']} | `{r['arch']}` | {r['flops']:.1f} | {r['inherited_top1_cream']:.2f} | "
                     f"{r['inherited_top1_spos']:.2f} | {r['retrained_mean']:.2f} ± {r['retrained_std']:.2f} |")
    return '\n'.join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--train-config', default='configs/demo/train.yaml')
    p.add_argument('--evolve-config', default='configs/demo/evolve.yaml')
    p.add_argument('--score-config', default='configs/demo/rank.yaml',
                   help='BN recomputation and scoring settings (EVOLVE.BN_BATCHES, EVAL_BATCHES, ...)')
    p.add_argument('--retrain-config', default='configs/demo/retrain.yaml')
    p.add_argument('--random-paths', type=int, default=5)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--out', default='./output/search_quality')
    p.add_argument('--set', nargs='*', default=[], metavar='KEY VALUE',
                   help='overrides for every run, e.g. DATA_DIR ./data/subImageNet NUM_GPU 8')
    p.add_argument('--retrain-set', nargs='*', default=[], metavar='KEY VALUE',
                   help='overrides for the retrains only, e.g. EPOCHS 4')
    p.add_argument('--jobs', type=int, default=1,
                   help='retrains run at once, each on its share of the cores (CPU; keep 1 with NUM_GPU)')
    a = p.parse_args(argv)
    if a.random_paths < 0 or len(a.set) % 2 or len(a.retrain_set) % 2 or a.jobs < 1:
        p.error('--random-paths must be >= 0, --jobs >= 1, and --set/--retrain-set take KEY VALUE pairs')
    out = os.path.abspath(a.out)
    runs = os.path.join(out, 'runs')
    if os.path.isdir(runs) and os.listdir(runs):
        sys.exit(f'error: {runs} is not empty: give another --out')
    os.makedirs(runs, exist_ok=True)
    start = time.time()

    def log(msg):
        print(msg, flush=True)

    from Paddle_Cream.config.config import load_config
    log('searching: Cream, SPOS + evolution')
    cream = run_mode('train', a.train_config, 'cream', runs, a.set, log)
    spos = run_mode('train', a.train_config, 'spos', runs, ['SUPERNET.METHOD', 'spos', *a.set], log)
    cream_ckpt, spos_ckpt = (os.path.join(d, 'checkpoint-last.pdparams') for d in (cream, spos))
    evolve = run_mode('evolve', a.evolve_config, 'evolve', runs, ['RESUME_PATH', spos_ckpt, *a.set], log)
    choices = []
    for label, folder in (('cream', cream), ('spos+evolve', evolve)):
        arch_file = os.path.join(folder, 'best_arch.json')
        if not os.path.isfile(arch_file):  # a Cream board that never filled (EPOCHS <= META_STA_EPOCH)
            sys.exit(f'error: the {label} search chose no architecture (no {arch_file}); its log says why')
        with open(arch_file) as f:
            choices.append((label, json.load(f)['arch']))
    score_cfg = load_config(a.score_config, a.set)
    from Paddle_Cream.engine.path_eval import load_search_checkpoint
    from Paddle_Cream.search.flops_table import PathFlops
    hypernet, ident = load_search_checkpoint(score_cfg, cream_ckpt)
    flops_of = PathFlops(hypernet, int(ident['resolution'])).flops
    drawn = random_paths(flops_of, ident, score_cfg, a.random_paths, min(a.seeds), [str(c[1]) for c in choices])
    paths = choices + [(f'random {i + 1}', path) for i, path in enumerate(drawn)]

    log(f'scoring {len(paths)} paths with inherited weights (BN recomputed per path)')
    scores = {name: inherited_top1(ckpt, score_cfg, [q for _, q in paths])
              for name, ckpt in (('cream', cream_ckpt), ('spos', spos_ckpt))}

    log(f'retraining {len(paths)} paths x {len(a.seeds)} seeds, {a.jobs} at a time')
    arch_files = [_arch_file(out, str(i), path) for i, (_, path) in enumerate(paths)]
    cores = sorted(os.sched_getaffinity(0))
    slots: 'queue.Queue[Optional[List[int]]]' = queue.Queue()
    for j in range(a.jobs):
        slots.put(None if a.jobs == 1 else cores[j::a.jobs] or cores)

    def retrain(i: int, seed: int) -> float:
        slot = slots.get()
        try:
            overrides = ['NET.SELECTION', '-1', 'NET.ARCH_FILE', arch_files[i], 'SEED', str(seed), *a.set,
                         *a.retrain_set]
            return final_top1(run_mode('retrain', a.retrain_config, f'retrain{i}_seed{seed}', runs, overrides,
                                       log, slot))
        finally:
            slots.put(slot)
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        top1 = {(i, s): pool.submit(retrain, i, s) for i in range(len(paths)) for s in a.seeds}
        top1 = {k: f.result() for k, f in top1.items()}
    rows = []
    for i, (label, path) in enumerate(paths):
        runs_top1 = [top1[i, s] for s in a.seeds]
        rows.append(dict(label=label, arch=path, flops=float(flops_of(path)), retrained=runs_top1,
                         retrained_mean=float(np.mean(runs_top1)), retrained_std=float(np.std(runs_top1)),
                         inherited_top1_cream=scores['cream'][i], inherited_top1_spos=scores['spos'][i]))
        log(f"  {label}: retrained top-1 {rows[-1]['retrained_mean']:.2f} ± {rows[-1]['retrained_std']:.2f}")

    retrained = [r['retrained_mean'] for r in rows]
    result = dict(kendall_tau_cream=_tau(scores['cream'], retrained), kendall_tau_spos=_tau(scores['spos'], retrained),
                  seeds=a.seeds, random_paths=a.random_paths, overrides=a.set, retrain_overrides=a.retrain_set,
                  seconds=time.time() - start,
                  configs=dict(train=a.train_config, evolve=a.evolve_config, score=a.score_config,
                               retrain=a.retrain_config), paths=rows)
    from Paddle_Cream.engine.output import write_json_atomic
    from pimm.utils.atomic import atomic_path
    write_json_atomic(result, os.path.join(out, 'search_quality.json'))
    text = (table(rows, a.seeds) + f"\n\nKendall tau of inherited vs retrained top-1 over {len(rows)} paths: "
            f"Cream supernet {_fmt(result['kendall_tau_cream'])}, SPOS supernet {_fmt(result['kendall_tau_spos'])}"
            f" ({result['seconds'] / 60:.1f} min)\n")
    with atomic_path(os.path.join(out, 'search_quality.md')) as tmp, open(tmp, 'w') as f:
        f.write(text)
    plot(rows, result, os.path.join(out, 'search_quality.png'))
    log('\n' + text + f'files in {out}: search_quality.json, search_quality.md, search_quality.png, runs/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
