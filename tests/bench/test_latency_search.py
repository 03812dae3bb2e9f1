"""``bench/latency_search.py`` end to end at tiny size, with a synthetic latency table: both searches, the budget
taken from the FLOPs-only choice, retrain and export of each choice (timed by ONNX Runtime), and the
table, JSON and PNG it writes."""
import json
import os

import pytest

from cli import load_bench
from latency import write_table
from Paddle_Cream.search import PathLatency

pytest.importorskip('onnxruntime', reason='the synthetic table names onnxruntime (requirements-dev.txt)')

TINY = ['EPOCHS', 2, 'DATASET.BATCH_SIZE', 16, 'SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 150,
        'SUPERNET.META_STA_EPOCH', 0, 'SUPERNET.UPDATE_ITER', 3, 'SUPERNET.POOL_SIZE', 3, 'WORKERS', 0]
QUICK_TIMING = ['LATENCY.WARMUP', 1, 'LATENCY.REPEATS', 2, 'LATENCY.ROUNDS', 1]


def test_tiny_run_compares_a_flops_only_and_a_latency_budget_search(digits, tmp_path, capsys):
    table_file = write_table(tmp_path / 'latency_table.json', [1, 1, 2, 1, 1])   # TINY's hypernetwork
    table = PathLatency.load(table_file)
    out = tmp_path / 'ls'
    rc = load_bench('latency_search').main(
        ['--out', str(out), '--table', table_file, '--fraction', '0.95', '--data-dir', str(digits),
         '--set', *map(str, TINY), '--export-set', *map(str, QUICK_TIMING)])
    assert rc == 0
    with open(out / 'latency_search.json') as f:
        result = json.load(f)
    flops_only, with_budget = result['rows']
    assert [flops_only['search'], with_budget['search']] == ['flops-only', 'latency-budget']
    # the budget is 95% of the FLOPs-only choice's prediction, and the latency search's choice keeps to it
    assert result['budget_ms'] == pytest.approx(0.95 * table.predict(flops_only['arch']), abs=1e-3)
    assert with_budget['predicted_ms'] == pytest.approx(table.predict(with_budget['arch']))
    assert with_budget['predicted_ms'] <= result['budget_ms'] < flops_only['predicted_ms']
    for row in result['rows']:   # measured by export (real ONNX Runtime timing: positive, finite)
        assert 0 < row['measured_ms'] < 1000 and row['within_budget'] == (row['measured_ms'] <= result['budget_ms'])
    lines = [line for line in (out / 'latency_search.md').read_text().splitlines() if line.startswith('| ')]
    assert len(lines) == 1 + 2 and lines[1].startswith('| flops-only | `')
    assert (out / 'latency_search.png').stat().st_size > 0
    runs = sorted(d.split('-', 1)[1] for d in os.listdir(out / 'runs') if os.path.isdir(out / 'runs' / d))
    assert runs == ['flops_only', 'flops_only_export', 'flops_only_retrain', 'latency_budget',
                    'latency_budget_export', 'latency_budget_retrain']
    assert 'latency-budget' in capsys.readouterr().out


def test_a_missing_table_is_one_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        load_bench('latency_search').main(['--out', str(tmp_path / 'ls'), '--table', str(tmp_path / 'none.json')])
    assert raised.value.code == 2 and 'none.json: no such file' in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'ls')
