#!/usr/bin/env python
"""The demo search under ``SUPERNET.FOLLOW corrected`` and ``official``, side by side, each choice retrained and
tested.

One command runs, through ``tools/main.py`` exactly as a user would, for each behaviour: ``train`` (the demo
recipe plus ``SUPERNET.FOLLOW``; ``--official-set`` for the official one only), ``retrain`` of its ``best_arch.json``
(``--retrain-epochs``, default the retrain config's) and ``test`` of
the retrained network on the val split. It prints a table (behaviour, chosen path, MFLOPs, the board's top-1,
the inherited top-1, the retrained network's test top-1, the last epoch's train loss) and writes
``follow_demo.json``, ``follow_demo.md`` and ``follow_demo.png`` (the train loss per epoch of both searches,
both final boards: top-1 against MFLOPs, each choice marked) in ``--out``. The comparison in docs/search.md:

    python bench/follow_demo.py --out ./output/follow_demo --official-set SUPERNET.LR_RULE linear

(At the demo's LR 0.05 the official LR rule, LR * (LR - t / T), turns negative after 5% of the run and the search
diverges; at the paper's LR 1.0 both rules are the same schedule, hence the override.)
"""
import argparse
import csv
import json
import os
import sys
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('GLOG_minloglevel', '2')

from _runs import run_mode  # noqa: E402

BEHAVIOURS = ('corrected', 'official')


def _read_json(file: str, what: str):
    if not os.path.isfile(file):
        sys.exit(f'error: {what} wrote no {file}; its log says why')
    with open(file) as f:
        return json.load(f)


def _losses(folder: str) -> List[float]:
    with open(os.path.join(folder, 'summary.csv')) as f:
        return [float(row['train_loss']) for row in csv.DictReader(f)]


def plot(rows: List[Dict], file: str) -> None:
    """Train loss per epoch and the final boards (top-1 against MFLOPs; entries at the same point drawn as one
    marker whose area and label give their number; the choice ringed)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from collections import Counter
    fig, (curves, boards) = plt.subplots(1, 2, figsize=(11, 4.8))
    for row, colour, shift in zip(rows, ('tab:blue', 'tab:red'), (-0.15, 0.15)):
        label = f"FOLLOW {row['behaviour']}"
        curves.plot(range(len(row['train_loss'])), row['train_loss'], marker='o', color=colour, label=label)
        points = Counter((e['flops'], e['top1']) for e in row['board'])
        xs = [f + shift for f, _ in points]   # the two boards side by side where they share a point
        boards.scatter(xs, [t for _, t in points], s=[40 * n for n in points.values()], color=colour, alpha=0.6,
                       label=f"{label}: {len(row['board'])} board entries")
        for x, ((_, top1), n) in zip(xs, points.items()):
            if n > 1:
                boards.annotate(f'x{n}', (x, top1), textcoords='offset points', xytext=(6, -10), fontsize=7,
                                color=colour)
        boards.scatter([row['flops'] + shift], [row['board_top1']], s=220, facecolors='none', edgecolors=colour,
                       linewidths=2, label=f"{label}: chosen {row['arch']}")
    curves.set(xlabel='epoch', ylabel='train loss (mean over the epoch)', title='supernet training')
    boards.set(xlabel='MFLOPs of the path', ylabel='top-1 on its training batch (%)', title='final boards')
    low = min(e['top1'] for row in rows for e in row['board'])
    boards.set_ylim(max(0., low - 5.), 101.)
    curves.legend(fontsize=8)
    boards.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.14), ncol=1)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)


def table(rows: List[Dict]) -> str:
    lines = ['| SUPERNET.FOLLOW | chosen path | MFLOPs | board top-1 | inherited top-1 | retrained test top-1 | '
             'last train loss |', '|---|---|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['behaviour']} | `{r['arch']}` | {r['flops']:.1f} | {r['board_top1']:.2f} | "
                     f"{r['inherited_top1']:.2f} | {r['test_top1']:.2f} | {r['train_loss'][-1]:.3f} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True, help='a new or empty folder for the runs and the results')
    p.add_argument('--retrain-epochs', type=int, default=0, help="retrain epochs (default: the retrain config's)")
    p.add_argument('--train-config', default='configs/demo/train.yaml')
    p.add_argument('--retrain-config', default='configs/demo/retrain.yaml')
    p.add_argument('--test-config', default='configs/demo/test.yaml')
    p.add_argument('--data-dir', default='./data/digits')
    p.add_argument('--set', nargs='*', default=[], help='KEY VALUE overrides for train and retrain')
    p.add_argument('--official-set', nargs='*', default=[],
                   help='KEY VALUE overrides for the official search only (e.g. SUPERNET.LR_RULE linear)')
    a = p.parse_args(argv)
    if len(a.set) % 2 or len(a.official_set) % 2 or a.retrain_epochs < 0:
        p.error('--set and --official-set take KEY VALUE pairs, --retrain-epochs >= 0')
    out = os.path.abspath(a.out)
    runs = os.path.join(out, 'runs')
    if os.path.isdir(runs) and os.listdir(runs):
        sys.exit(f'error: {runs} is not empty: give another --out')
    os.makedirs(runs, exist_ok=True)
    common = [*a.set, 'DATA_DIR', a.data_dir]
    start = time.time()

    def log(msg):
        print(msg, flush=True)

    rows = []
    for behaviour in BEHAVIOURS:
        began = time.time()
        extra = a.official_set if behaviour == 'official' else []
        search = run_mode('train', a.train_config, f'{behaviour}_search', runs,
                          [*common, 'SUPERNET.FOLLOW', behaviour, *extra], log)
        seconds = time.time() - began
        arch_file = os.path.join(search, 'best_arch.json')
        best = _read_json(arch_file, f'the {behaviour} search')
        epochs = ['EPOCHS', a.retrain_epochs] if a.retrain_epochs else []
        retrain = run_mode('retrain', a.retrain_config, f'{behaviour}_retrain', runs,
                           [*common, 'NET.ARCH_FILE', arch_file, *epochs], log)
        tested = run_mode('test', a.test_config, f'{behaviour}_test', runs,
                          ['DATA_DIR', a.data_dir, 'NET.ARCH_FILE', arch_file,
                           'RESUME_PATH', os.path.join(retrain, 'model_best.pdparams')], log)
        results = _read_json(os.path.join(tested, 'results.json'), 'test')
        rows.append(dict(behaviour=behaviour, arch=best['arch'], flops=best['flops'], board_top1=best['board_top1'],
                         inherited_top1=best['top1'], test_top1=results['top1'], train_loss=_losses(search),
                         board=_read_json(os.path.join(search, 'board.json'), 'the search'),
                         switches=best['behaviour'], search_seconds=seconds))
        log(f"  {behaviour}: chose {best['arch']} ({best['flops']:.1f} MFLOPs), retrained test top-1 "
            f"{results['top1']:.2f}")

    from Paddle_Cream.engine.output import write_json_atomic
    write_json_atomic(dict(rows=rows, retrain_epochs=a.retrain_epochs or 'the retrain config', overrides=common,
                           official_overrides=a.official_set, seconds=time.time() - start),
                      os.path.join(out, 'follow_demo.json'))
    text = table(rows)
    with open(os.path.join(out, 'follow_demo.md'), 'w') as f:
        f.write(text + '\n')
    plot(rows, os.path.join(out, 'follow_demo.png'))
    log(text)
    log(f'files in {out}: follow_demo.json, follow_demo.md, follow_demo.png, runs/ ({time.time() - start:.0f}s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
