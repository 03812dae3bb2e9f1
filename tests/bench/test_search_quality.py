"""``bench/search_quality.py`` end to end at tiny size: every run it chains (train cream, train spos, evolve,
retrain) through ``tools/main.py``, and the table, JSON and PNG it writes."""
import json
import os

import pytest

from cli import load_bench

TINY = ['DATASET.BATCH_SIZE', 16, 'EPOCHS', 2, 'WORKERS', 0, 'SUPERNET.META_STA_EPOCH', 0,
        'SUPERNET.UPDATE_ITER', 3, 'SUPERNET.POOL_SIZE', 3, 'EVOLVE.POPULATION', 4, 'EVOLVE.TOP_K', 2,
        'EVOLVE.MUTATION_NUM', 2, 'EVOLVE.CROSSOVER_NUM', 2, 'EVOLVE.GENERATIONS', 1, 'EVOLVE.BN_BATCHES', 2,
        'EVOLVE.EVAL_BATCHES', 1]


def _bench():
    return load_bench('search_quality')


def test_tiny_run_writes_the_table_and_kendall_tau(digits, tmp_path, capsys):
    out = tmp_path / 'sq'
    rc = _bench().main(['--out', str(out), '--random-paths', '2', '--seeds', '0', '1', '--jobs', '2',
                        '--set', 'DATA_DIR', digits, *map(str, TINY), '--retrain-set', 'EPOCHS', '1'])
    assert rc == 0
    with open(out / 'search_quality.json') as f:
        result = json.load(f)
    labels = [r['label'] for r in result['paths']]
    assert labels == ['cream', 'spos+evolve', 'random 1', 'random 2']
    archs = [str(r['arch']) for r in result['paths']]
    assert len(set(archs[2:])) == 2 and not set(archs[2:]) & set(archs[:2])   # random paths: new, distinct
    for row in result['paths']:
        assert len(row['retrained']) == 2 and 0 <= row['retrained_mean'] <= 100
        assert 100 <= row['flops'] <= 200 or row['label'] == 'spos+evolve'   # the demo budget [100, 200]
        assert 0 <= row['inherited_top1_cream'] <= 100 and 0 <= row['inherited_top1_spos'] <= 100
    assert result['retrain_overrides'] == ['EPOCHS', '1']
    table = (out / 'search_quality.md').read_text()
    assert len([line for line in table.splitlines() if line.startswith('| ')]) == 1 + len(labels)
    assert 'Kendall tau of inherited vs retrained top-1 over 4 paths' in table
    assert (out / 'search_quality.png').stat().st_size > 0
    # 4 paths x 2 seeds retrained, each in its own run folder
    assert len([d for d in os.listdir(out / 'runs') if '-retrain' in d]) == 8
    assert 'Kendall tau' in capsys.readouterr().out
    # a second run into the same folder is refused rather than mixing results
    with pytest.raises(SystemExit, match='not empty'):
        _bench().main(['--out', str(out)])
