#!/usr/bin/env python
"""A FLOPs-only search against a latency-budget search, each choice exported and timed on this machine.

One command runs, through ``tools/main.py`` exactly as a user would:

1. ``latency`` -> a latency table for the demo's hypernetwork (or ``--table`` an existing one);
2. ``train`` with the demo recipe (FLOPs budget only) -> its chosen path and that path's predicted latency;
3. the latency budget: ``--fraction`` (0.85) of that prediction, unless ``--budget`` gives milliseconds;
4. ``train`` again, the same recipe plus ``SUPERNET.LATENCY_TABLE`` and ``SUPERNET.LATENCY_MAXIMUM``;
5. ``retrain`` of each chosen path (``--retrain-epochs``), then ``export`` with ``EXPORT.LATENCY_TABLE``,
   which times the exported network with the table's runtime, threads and batch.

It prints a table (search, path, MFLOPs, predicted and measured ms, the budget, whether it is met) and
writes ``latency_search.json``, ``latency_search.md`` and ``latency_search.png`` (both boards' paths:
top-1 against predicted latency, the budget, each choice's measured latency) in ``--out``. docs/search.md's
demo:

    python bench/latency_search.py --out ./output/latency_search
"""
import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # bench/'s shared helpers, also when imported
os.environ.setdefault('GLOG_minloglevel', '2')

from _runs import run_mode  # noqa: E402


def _read_json(file: str, what: str) -> Dict:
    if not os.path.isfile(file):
        sys.exit(f'error: {what} wrote no {file}; its log says why')
    with open(file) as f:
        return json.load(f)


def _board(folder: str) -> List[Dict]:
    """The search's final board entries (``board.json``: arch, top1, ...)."""
    return _read_json(os.path.join(folder, 'board.json'), 'the search')


def _retrain_and_export(label: str, search: str, table_file: str, runs: str, a, log) -> Dict:
    """Retrain the search's best_arch.json, export the result with the latency table; export.json."""
    retrain = run_mode('retrain', a.retrain_config, f'{label}_retrain', runs,
                       [*a.set, 'NET.ARCH_FILE', os.path.join(search, 'best_arch.json'), 'EPOCHS',
                        a.retrain_epochs], log)
    exported = run_mode('export', a.export_config, f'{label}_export', runs,
                        ['NET.SELECTION', -1, 'NET.ARCH_FILE', os.path.join(retrain, 'arch.json'),
                         'RESUME_PATH', os.path.join(retrain, 'model_best.pdparams'),
                         'DATASET.NUM_CLASSES', 10, 'DATASET.CROP_PCT', 1.0, 'DATA_DIR', a.data_dir,
                         'EXPORT.LATENCY_TABLE', table_file, *a.export_set], log)
    return _read_json(os.path.join(exported, 'export.json'), 'export')


def plot(rows: List[Dict], boards: Dict[str, List[Dict]], budget: float, file: str, note: str) -> None:
    """Both boards' paths (top-1 against predicted ms), the budget, each choice predicted and measured."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from pimm.utils.atomic import atomic_path
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {'flops-only': 'tab:blue', 'latency-budget': 'tab:orange'}
    for label, entries in boards.items():
        ax.scatter([e['predicted_ms'] for e in entries], [e['top1'] for e in entries], c=colours[label],
                   alpha=0.5, label=f'{label} search: board paths')
    for r in rows:
        c = colours[r['search']]
        ax.scatter([r['predicted_ms']], [r['board_top1']], marker='*', s=240, c=c, edgecolors='k',
                   label=f"{r['search']}: chosen (predicted)")
        ax.scatter([r['measured_ms']], [r['board_top1']], marker='X', s=120, c=c, edgecolors='k',
                   label=f"{r['search']}: chosen, exported and measured")
    ax.axvline(budget, color='tab:red', ls='--', label=f'latency budget {budget:.2f} ms')
    ax.set_xlabel(f'latency (ms)\n{note}')
    ax.set_ylabel("top-1 on the board (%, the search's batch)")
    ax.set_title('FLOPs-only vs latency-budget Cream search')
    ax.legend(fontsize=7, loc='best')
    ax.grid(alpha=0.3)
    with atomic_path(file) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches='tight', format='png')
    plt.close(fig)


def table(rows: List[Dict], budget: float) -> str:
    lines = ['| search | chosen path | MFLOPs | inherited val top-1 | predicted ms | measured ms (exported) | '
             'budget ms | within budget |', '|---|---|---:|---:|---:|---:|---:|---|']
    for r in rows:
        lines.append(f"| {r['search']} | `{r['arch']}` | {r['flops']:.1f} | {r['inherited_top1']:.2f} | "
                     f"{r['predicted_ms']:.3f} | {r['measured_ms']:.3f} | {budget:.3f} | "
                     f"{'yes' if r['measured_ms'] <= budget else 'no'} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True, help='a new or empty folder for the runs and the results')
    p.add_argument('--table', default='', help='an existing latency_table.json (default: build one)')
    p.add_argument('--budget', type=float, default=0., help='latency budget in ms (default: --fraction)')
    p.add_argument('--fraction', type=float, default=0.85,
                   help="budget = this fraction of the FLOPs-only choice's predicted latency")
    p.add_argument('--retrain-epochs', type=int, default=1)
    p.add_argument('--train-config', default='configs/demo/train.yaml')
    p.add_argument('--retrain-config', default='configs/demo/retrain.yaml')
    p.add_argument('--latency-config', default='configs/latency.yaml')
    p.add_argument('--export-config', default='configs/export.yaml')
    p.add_argument('--data-dir', default='./data/digits')
    p.add_argument('--set', nargs='*', default=[], help='KEY VALUE overrides for train and retrain')
    p.add_argument('--latency-set', nargs='*', default=[], help='KEY VALUE overrides for latency')
    p.add_argument('--export-set', nargs='*', default=[], help='KEY VALUE overrides for export')
    a = p.parse_args(argv)
    odd = any(len(pairs) % 2 for pairs in (a.set, a.latency_set, a.export_set))
    if odd or not 0 < a.fraction <= 1 or a.budget < 0 or a.retrain_epochs < 1:
        p.error('--set/--latency-set/--export-set take KEY VALUE pairs, --fraction is in (0, 1], --budget >= 0, '
                '--retrain-epochs >= 1')
    if a.table and not os.path.isfile(a.table):
        p.error(f'--table {a.table}: no such file')
    out = os.path.abspath(a.out)
    runs = os.path.join(out, 'runs')
    if os.path.isdir(runs) and os.listdir(runs):
        sys.exit(f'error: {runs} is not empty: give another --out')
    os.makedirs(runs, exist_ok=True)
    a.set = [*a.set, 'DATA_DIR', a.data_dir]
    start = time.time()

    def log(msg):
        print(msg, flush=True)

    from Paddle_Cream.search.latency_table import PathLatency
    table_file = os.path.abspath(a.table) if a.table else os.path.join(
        run_mode('latency', a.latency_config, 'table', runs, a.latency_set, log), 'latency_table.json')
    latency = PathLatency.load(table_file)
    log(f'latency table: {latency.describe()}')

    flops_only = run_mode('train', a.train_config, 'flops_only', runs, a.set, log)
    flops_best = _read_json(os.path.join(flops_only, 'best_arch.json'), 'the FLOPs-only search')
    budget = a.budget or round(a.fraction * latency.predict(flops_best['arch']), 3)
    log(f"FLOPs-only choice {flops_best['arch']}: predicted {latency.predict(flops_best['arch']):.3f} ms; "
        f'latency budget {budget:.3f} ms')
    with_budget = run_mode('train', a.train_config, 'latency_budget', runs,
                           [*a.set, 'SUPERNET.LATENCY_TABLE', table_file, 'SUPERNET.LATENCY_MAXIMUM', budget], log)

    rows, boards = [], {}
    for label, folder in (('flops-only', flops_only), ('latency-budget', with_budget)):
        best = _read_json(os.path.join(folder, 'best_arch.json'), f'the {label} search')
        exported = _retrain_and_export(label.replace('-', '_'), folder, table_file, runs, a, log)
        timed = exported['latency']
        boards[label] = [dict(e, predicted_ms=latency.predict(e['arch'])) for e in _board(folder)]
        rows.append(dict(search=label, arch=best['arch'], flops=best['flops'], board_top1=best['board_top1'],
                         inherited_top1=best['top1'],
                         predicted_ms=latency.predict(best['arch']), measured_ms=timed['measured_ms'],
                         statistic=timed['statistic'], export_error_percent=timed['error_percent'],
                         within_budget=timed['measured_ms'] <= budget))
        log(f"  {label}: {best['arch']} predicted {rows[-1]['predicted_ms']:.3f} ms, exported and measured "
            f"{timed['measured_ms']:.3f} ms (budget {budget:.3f} ms)")

    from Paddle_Cream.engine.output import write_json_atomic
    result = dict(budget_ms=budget, table=table_file, table_settings=latency.settings(), rows=rows,
                  retrain_epochs=a.retrain_epochs, overrides=a.set, seconds=time.time() - start)
    write_json_atomic(result, os.path.join(out, 'latency_search.json'))
    text = table(rows, budget)
    with open(os.path.join(out, 'latency_search.md'), 'w') as f:
        f.write(text + f'\n\nlatency: {latency.describe()}; statistic {latency.statistic}\n')
    plot(rows, boards, budget, os.path.join(out, 'latency_search.png'), latency.describe())
    log(text)
    log(f'files in {out}: latency_search.json, latency_search.md, latency_search.png, runs/ '
        f'({time.time() - start:.0f}s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
