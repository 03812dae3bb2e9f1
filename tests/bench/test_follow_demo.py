"""``bench/follow_demo.py`` end to end at tiny size: both behaviours searched, each choice retrained and tested,
the table, JSON and PNG it writes."""
import json

from cli import load_bench

TINY = ['EPOCHS', 2, 'DATASET.BATCH_SIZE', 16, 'SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 150,
        'SUPERNET.META_STA_EPOCH', 0, 'SUPERNET.UPDATE_ITER', 3, 'SUPERNET.POOL_SIZE', 3, 'WORKERS', 0]


def test_tiny_run_compares_the_corrected_and_the_official_search(digits, tmp_path):
    out = tmp_path / 'follow'
    rc = load_bench('follow_demo').main(['--out', str(out), '--data-dir', str(digits), '--retrain-epochs', '1',
                                         '--set', *map(str, TINY), '--official-set', 'SUPERNET.LR_RULE', 'linear'])
    assert rc == 0
    with open(out / 'follow_demo.json') as f:
        rows = json.load(f)['rows']
    assert [r['behaviour'] for r in rows] == ['corrected', 'official']
    assert rows[0]['switches']['MATCH_WEIGHT'] == 'teacher' and rows[1]['switches']['MATCH_WEIGHT'] == 'last_entry'
    assert rows[0]['switches']['LR_RULE'] == rows[1]['switches']['LR_RULE'] == 'linear'   # --official-set
    for r in rows:
        assert len(r['train_loss']) == 2 and 0 <= r['test_top1'] <= 100 and r['board']
        assert r['arch'] == r['board'][0]['arch']   # the choice is the board's best
    lines = [line for line in (out / 'follow_demo.md').read_text().splitlines() if line.startswith('| ')]
    assert len(lines) == 1 + 2 and lines[1].startswith('| corrected | `')
    assert (out / 'follow_demo.png').stat().st_size > 0
    # bench/follow_meta_gradient.py on the corrected search's own state: each official switch alone against it
    import glob
    run = glob.glob(str(out / 'runs' / '*-corrected_search'))[0]
    assert load_bench('follow_meta_gradient').main(['--run', run, '--out', str(tmp_path / 'mg'),
                                                    '--data-dir', str(digits)]) == 0
    with open(tmp_path / 'mg' / 'meta_gradient.json') as f:
        rows = {r['case']: r for r in json.load(f)['rows']}
    assert len(rows) == 8 and rows['corrected']['relative_difference'] == 0 and rows['corrected']['norm'] > 0
    # the chain rule through the stem alone is a different gradient; the BatchNorm switch changes no output
    assert rows['META_CHAIN stem']['relative_difference'] > 0.1 and rows['META_BN running']['cosine'] > 0.999
