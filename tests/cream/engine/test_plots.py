"""What board.png and curves.png draw: every board entry, labelled, on the budget's axis; each curve named."""
import numpy as np
import pytest

from Paddle_Cream.engine.plots import plot_board, plot_curves

# a small board as it often is: entries sharing a point (equal MFLOPs, equal batch top-1)
BOARD = [{'rank': 1, 'top1': 75.0, 'flops': 120.0}, {'rank': 2, 'top1': 62.5, 'flops': 110.0},
         {'rank': 3, 'top1': 62.5, 'flops': 110.0}, {'rank': 4, 'top1': 62.5, 'flops': 110.0},
         {'rank': 5, 'top1': 50.0, 'flops': 130.0}]


def _texts(ax):
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize('cost, budget', [('flops', (0., 150.)), ('latency', (1.5, 2.5))])
def test_the_board_draws_every_entry_labelled_on_the_budgets_axis(tmp_path, cost, budget):
    entries = [dict(e, latency=1.8 + e['flops'] / 1000) for e in BOARD] if cost == 'latency' else BOARD
    key = 'flops' if cost == 'flops' else 'latency'
    fig = plot_board(entries, *budget, str(tmp_path / 'board.png'), cost=cost)
    assert (tmp_path / 'board.png').exists()
    (ax,) = fig.axes
    paths = [c for c in ax.collections if 'board paths' in str(c.get_label())]
    assert len(paths) == 1
    points = paths[0].get_offsets()
    assert len(points) == len(entries)                       # one marker an entry ...
    assert len({tuple(p) for p in np.asarray(points)}) == len(entries)   # ... each at its own place
    for (x, y), e in zip(np.asarray(points), entries):      # beside its true point, top-1 exact
        assert y == e['top1'] and abs(x - e[key]) < 0.05 * (budget[1] - budget[0])
    assert sorted(_texts(ax)) == sorted(f"#{e['rank']}" for e in entries)
    low, high = ax.get_xlim()
    assert low < budget[0] and high > budget[1]              # the whole budget, with margins
    assert '(' in ax.get_xlabel() and '%' in ax.get_ylabel()  # units


def test_curves_name_each_series_and_label_its_points(tmp_path):
    rows = [dict(epoch=e, train_loss=2.3 - 0.3 * e, eval_loss=2.2 - 0.2 * e, eval_top1=20. + 10 * e,
                 eval_path_flops=100. + e, lr=0.1) for e in range(3)]
    labels = {'eval_top1': 'val top-1 of a random path each epoch', 'train_loss': 'train loss'}
    fig = plot_curves(rows, str(tmp_path / 'curves.png'), title='search', labels=labels,
                      notes={'eval_top1': ['100M', '101M', '102M']})
    assert (tmp_path / 'curves.png').exists()
    ax_loss, ax_acc = fig.axes
    assert [t.get_text() for t in ax_acc.get_legend().get_texts()] == ['val top-1 of a random path each epoch']
    assert sorted(t.get_text() for t in ax_loss.get_legend().get_texts()) == ['eval_loss', 'train loss']
    assert _texts(ax_acc) == ['100M', '101M', '102M'] and _texts(ax_loss) == []
    assert 'epoch' in ax_acc.get_xlabel() and '%' in ax_acc.get_ylabel()
