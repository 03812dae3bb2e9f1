"""PNG plots people look at: the board (top-1 against FLOPs), training curves, evolution, rank scatter."""
from typing import Dict, List, Sequence

from pimm.utils.atomic import atomic_path

__all__ = ['plot_board', 'plot_curves', 'plot_evolution', 'plot_xy', 'plot_labelled_errorbars']


def _figure():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches='tight', format='png')


def plot_board(entries: Sequence[Dict], flops_minimum: float, flops_maximum: float, path: str,
               title: str = 'prioritized board') -> None:
    """Top-1 against MFLOPs of the board's paths, the budget drawn as a band, the best one marked."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axvspan(flops_minimum, flops_maximum, color='tab:green', alpha=0.08, label='FLOPs budget')
    for x in (flops_minimum, flops_maximum):
        ax.axvline(x, color='tab:green', lw=1, ls='--')
    if entries:
        ax.scatter([e['flops'] for e in entries], [e['top1'] for e in entries], c='tab:blue', label='board paths')
        best = max(entries, key=lambda e: e['top1'])
        ax.scatter([best['flops']], [best['top1']], marker='*', s=220, c='tab:red', label='best path')
        lo = min(min(e['flops'] for e in entries), flops_minimum)
        hi = max(max(e['flops'] for e in entries), flops_maximum)
        ax.set_xlim(lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1))
    ax.set_xlabel('MFLOPs (conv + linear MACs)')
    ax.set_ylabel('batch top-1 (%)')
    ax.set_title(title)
    ax.legend(loc='lower right', fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def plot_curves(rows: List[Dict[str, float]], path: str, title: str = 'training') -> None:
    """Loss and top-1 per epoch from summary rows (keys like train_loss, eval_top1)."""
    plt = _figure()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [r['epoch'] for r in rows]
    for key in sorted({k for r in rows for k in r if k != 'epoch'}):
        values = [r.get(key) for r in rows]
        if any(v is None for v in values):
            continue
        ax = ax_loss if 'loss' in key else ax_acc if 'top' in key else None
        if ax is not None:
            ax.plot(epochs, values, marker='o', label=key)
    for ax, label in ((ax_loss, 'loss'), (ax_acc, 'top-k accuracy (%)')):
        ax.set_xlabel('epoch')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)


def plot_xy(xs: Sequence[float], ys: Sequence[float], path: str, xlabel: str, ylabel: str, title: str) -> None:
    """A plain scatter (rank correlation, evolution history)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(xs, ys)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def plot_labelled_errorbars(xs: Sequence[float], ys: Sequence[float], yerr: Sequence[float],
                            labels: Sequence[str], path: str, xlabel: str, ylabel: str, title: str) -> None:
    """A scatter with vertical error bars and a name beside each point (search quality)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.errorbar(xs, ys, yerr=yerr, fmt='o', capsize=3)
    for x, y, label in zip(xs, ys, labels):
        ax.annotate(label, (x, y), textcoords='offset points', xytext=(4, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def plot_evolution(history: Sequence[Dict], path: str) -> None:
    """Top-1 against generation of an evolutionary search: best so far, each generation's best and mean."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 4))
    for key, label in (('best_so_far', 'best so far'), ('best_top1', 'generation best'),
                       ('mean_top1', 'generation mean')):
        points = [(h['generation'], h[key]) for h in history if h[key] is not None]
        ax.plot([g for g, _ in points], [v for _, v in points], marker='o', label=label)
    ax.set_xlabel('generation')
    ax.set_ylabel('val top-1 (%), BN recomputed')
    ax.set_title('SPOS evolutionary search')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
