"""``bench/deploy_latency.py`` at tiny size: every side of cream_14 at batch 1 on one thread, one round, a
few timed calls each, and the table, JSON and PNG it writes."""
import json

import pytest

from cli import load_bench

pytest.importorskip('torch')
pytest.importorskip('timm')
pytest.importorskip('onnxruntime')
pytest.importorskip('openvino')
pytest.importorskip('paddle2onnx')


def _bench():
    return load_bench('deploy_latency')


def test_tiny_run_times_every_side_and_refuses_a_used_out(tmp_path, capsys):
    bench, out = _bench(), tmp_path / 'deploy'
    args = ['--models', '14', '--batches', '1', '--threads', '1', '--rounds', '1', '--repeats', '3']
    assert bench.main(args + ['--out', str(out)]) == 0
    with open(out / 'deploy_latency.json') as f:
        result = json.load(f)
    sides = list(bench.SIDES)
    assert result['meta']['sides'] == sides and result['meta']['rounds'] == 1
    row, = result['rows']
    assert (row['model'], row['input_size'], row['batch'], row['threads']) == ('14', 64, 1, 1)
    assert sorted(row['sides']) == sorted(sides)
    for side, stats in row['sides'].items():
        assert stats['median_ms'] > 0 and stats['load_s'] > 0 and stats['ratio'] >= 1, side
        assert stats['p10_ms'] <= stats['median_ms'] <= stats['p90_ms'], side
    assert row['sides'][row['fastest']]['ratio'] == 1
    chosen, = row['sides']['auto']['chosen']
    assert chosen in bench.RUNTIMES and row['best_runtime'] in bench.RUNTIMES
    assert row['auto_vs_best_runtime'] > 0 and row['paddle_vs_onnxruntime'] > 0

    table = (out / 'deploy_latency.md').read_text()
    latency_rows = [line for line in table.splitlines() if line.startswith('| cream_14 | 64 |')]
    header = next(i for i, line in enumerate(table.splitlines()) if line.startswith('| model | px |'))
    assert table.splitlines()[header].count('|') == table.splitlines()[header + 1].count('|')
    assert len(latency_rows) == 1
    # model, px, batch, threads, the sides, fastest, auto chose, auto / best runtime, paddle / onnxruntime
    assert latency_rows[0].count('|') == 1 + 4 + len(sides) + 4
    assert f'| {chosen} |' in latency_rows[0]
    assert (out / 'deploy_latency.png').stat().st_size > 0
    assert latency_rows[0] in capsys.readouterr().out
    # a second run into the same folder is refused rather than overwriting
    with pytest.raises(SystemExit, match='exists'):
        bench.main(args + ['--out', str(out)])
