"""PNG plots people look at: the board (top-1 against FLOPs or latency), training curves, evolution, rank scatter."""
from typing import Dict, List, Optional, Sequence, Tuple

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


# board cost -> (entry key, x axis label, budget label)
_BOARD_AXES = {'flops': ('flops', 'MFLOPs (conv + linear MACs)', 'FLOPs budget'),
               'latency': ('latency', 'predicted latency (ms)', 'latency budget')}


def _spread(xs: Sequence[float], ys: Sequence[float], step: float) -> Tuple[List[float], List[int]]:
    """Each entry's x, entries sharing an (x, y) point set ``step`` apart around it (each then shows as its
    own marker: paths of equal FLOPs and equal batch top-1 are common on a small board), and its place in
    its group (0 for an entry alone)."""
    groups: Dict[tuple, List[int]] = {}
    for i, point in enumerate(zip(xs, ys)):
        groups.setdefault(point, []).append(i)
    spread, place = list(xs), [0] * len(xs)
    for members in groups.values():
        for j, i in enumerate(members):
            spread[i], place[i] = xs[i] + (j - (len(members) - 1) / 2) * step, j
    return spread, place


def plot_board(entries: Sequence[Dict], minimum: float, maximum: float, path: str, title: str = 'prioritized board',
               cost: str = 'flops', note: Optional[str] = None):
    """Top-1 against the board's cost of its paths (MFLOPs, or predicted ms with ``cost='latency'``), every
    entry a marker labelled with its rank (entries sharing a point set side by side), the x axis spanning
    the budget ``[minimum, maximum]`` (drawn as a band) and every entry, the best one starred; ``note`` is
    added to the x label (e.g. the latency table's settings). Returns the figure."""
    key, xlabel, budget = _BOARD_AXES[cost]
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.axvspan(minimum, maximum, color='tab:green', alpha=0.08, label=f'{budget} [{minimum:g}, {maximum:g}]')
    for x in (minimum, maximum):
        ax.axvline(x, color='tab:green', lw=1, ls='--')
    xs, ys = [e[key] for e in entries], [e['top1'] for e in entries]
    lo, hi = min(xs + [minimum]), max(xs + [maximum])
    margin = 0.08 * (hi - lo) or 0.1 * abs(hi) or 1.   # never a zero span; ms spans can be well under 1
    shown, place = _spread(xs, ys, step=0.35 * margin)
    ax.set_xlim(min(shown + [lo]) - margin, max(shown + [hi]) + margin)   # shown: a long row of equal points too
    if entries:
        shared = '; equal points side by side' if len(set(zip(xs, ys))) < len(entries) else ''
        ax.scatter(shown, ys, c='tab:blue', label=f'board paths ({len(entries)}), labelled #rank{shared}')
        for i, (x, y, e) in enumerate(zip(shown, ys, entries)):
            # side by side, the labels go above and below in turn to stay apart
            ax.annotate(f"#{e.get('rank', i + 1)}", (x, y), textcoords='offset points', ha='center',
                        xytext=(0, -12 if place[i] % 2 else 6), fontsize=7)
        best = max(range(len(entries)), key=lambda i: ys[i])
        ax.scatter([shown[best]], [ys[best]], marker='*', s=220, c='tab:red', label='best path')
        ax.set_ylim(max(0., min(ys) - 10.), min(100., max(ys)) + 8.)   # room for the rank labels above
    ax.set_xlabel(xlabel if note is None else f'{xlabel}\n{note}')
    ax.set_ylabel("top-1 on the path's training batch (%)")
    ax.set_title(title)
    ax.legend(loc='best', fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
    return fig


_MAX_NOTES = 30   # beyond this many epochs the notes beside the points would overlap into a smear


def plot_curves(rows: List[Dict[str, float]], path: str, title: str = 'training',
                labels: Optional[Dict[str, str]] = None, notes: Optional[Dict[str, Sequence[str]]] = None):
    """Loss and top-1 per epoch from summary rows (keys like train_loss, eval_top1); returns the figure.

    ``labels``: the legend text of a key, saying what its points were measured on (e.g. a different random
    path each epoch); the key itself otherwise. ``notes``: a short text a row written beside each point of a
    key (e.g. each point's path MFLOPs), left out past ``_MAX_NOTES`` epochs."""
    labels, notes = labels or {}, notes or {}
    plt = _figure()
    from matplotlib.ticker import MaxNLocator
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    epochs = [r['epoch'] for r in rows]
    for key in sorted({k for r in rows for k in r if k != 'epoch'}):
        values = [r.get(key) for r in rows]
        if any(v is None for v in values):
            continue
        ax = ax_loss if 'loss' in key else ax_acc if 'top' in key else None
        if ax is None:
            continue
        ax.plot(epochs, values, marker='o', label=labels.get(key, key))
        if key in notes and len(rows) <= _MAX_NOTES:
            for x, y, text in zip(epochs, values, notes[key]):
                ax.annotate(text, (x, y), textcoords='offset points', xytext=(0, 6), ha='center', fontsize=7)
    for ax, label in ((ax_loss, 'loss'), (ax_acc, 'accuracy (%)')):
        ax.set_xlabel('epoch (one point per finished epoch)')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.16))   # below: the curves stay clear
    fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)
    return fig


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


def plot_evolution(history: Sequence[Dict], path: str, latency_limit: Optional[float] = None) -> None:
    """Top-1 against generation of an evolutionary search: best so far, each generation's best and mean;
    when the top-k carry predicted latency, beside it the final top-k's top-1 against latency, the
    limit drawn."""
    plt = _figure()
    final = history[-1]['top_k'] if history else []
    with_latency = bool(final) and 'latency_ms' in final[0]
    fig, axes = plt.subplots(1, 2 if with_latency else 1, figsize=(10 if with_latency else 5, 4), squeeze=False)
    ax = axes[0][0]
    for key, label in (('best_so_far', 'best so far'), ('best_top1', 'generation best'),
                       ('mean_top1', 'generation mean')):
        points = [(h['generation'], h[key]) for h in history if h[key] is not None]
        ax.plot([g for g, _ in points], [v for _, v in points], marker='o', label=label)
    ax.set_xlabel('generation')
    ax.set_ylabel('val top-1 (%), BN recomputed')
    ax.set_title('SPOS evolutionary search')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if with_latency:
        ax = axes[0][1]
        ax.scatter([e['latency_ms'] for e in final], [e['top1'] for e in final], c='tab:blue', label='final top-k')
        ax.scatter([final[0]['latency_ms']], [final[0]['top1']], marker='*', s=220, c='tab:red', label='chosen')
        if latency_limit:
            ax.axvline(latency_limit, color='tab:green', lw=1, ls='--', label=f'limit {latency_limit:g} ms')
        ax.set_xlabel('predicted latency (ms, latency table)')
        ax.set_ylabel('val top-1 (%), BN recomputed')
        ax.set_title('top-k against latency')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_latency_validation(validation: Dict, path: str, title: str = 'latency table') -> None:
    """Predicted against measured milliseconds of a latency table's validation networks, with the
    +-10% band and the figures of :func:`~Paddle_Cream.search.latency_table.prediction_report`."""
    plt = _figure()
    entries = validation['entries']
    measured = [e['measured_ms'] for e in entries]
    predicted = [e['predicted_ms'] for e in entries]
    lo, hi = 0.95 * min(measured + predicted), 1.05 * max(measured + predicted)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([lo, hi], [lo, hi], color='black', lw=1, label='predicted = measured')
    ax.fill_between([lo, hi], [0.9 * lo, 0.9 * hi], [1.1 * lo, 1.1 * hi], color='tab:green', alpha=0.12,
                    label='within +-10%')
    spread = [[m - e['spread_ms'][0] for m, e in zip(measured, entries)],
              [e['spread_ms'][1] - m for m, e in zip(measured, entries)]]
    ax.errorbar(measured, predicted, xerr=spread, fmt='o', ms=4, color='tab:blue', ecolor='tab:blue', alpha=0.7,
                elinewidth=0.8, label='validation network (measured p10-p90)')
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel('measured latency (ms, whole exported network)')
    ax.set_ylabel('predicted latency (ms, table)')
    ax.set_title(f"{title}\n{validation['paths']} paths: MAPE {validation['mape_percent']:.1f}%, "
                 f"{100 * validation['within_10_percent']:.0f}% within 10%, tau {validation['kendall_tau']:.2f}",
                 fontsize=9)
    ax.legend(loc='upper left', fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
