"""The demo data at the demo's own size: a searched-style architecture retrained on it learns. (The demo loop
itself, every step at tiny size as the README writes it, is tests/test_readme.py.)"""
import glob
import json

from cli import run_main

def main(*args):
    proc = run_main(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def one(pattern):
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_retraining_a_searched_arch_on_the_demo_data_learns(tmp_path):
    """The full digits demo data, a searched-style architecture, three epochs: clearly above chance (10%).
    EMA is off: with the demo's decay it needs more than three epochs to catch up with the weights."""
    arch_file = tmp_path / 'best_arch.json'
    arch_file.write_text(json.dumps({'arch': [[0], [3], [3], [3, 1], [3], [3], [0]], 'flops': 130.0, 'top1': 0.}))
    data = str(tmp_path / 'digits')
    main('retrain', 'configs/demo/retrain.yaml', 'DATA_DIR', data, 'SAVE_PATH', tmp_path / 'retrain',
         'NET.ARCH_FILE', arch_file, 'EPOCHS', 3, 'NET.EMA.USE', 'False', 'WORKERS', 1)
    best = one(str(tmp_path / 'retrain' / '*' / 'model_best.pdparams'))
    main('test', 'configs/test.yaml', 'NET.SELECTION', -1, 'NET.ARCH_FILE', arch_file, 'RESUME_PATH', best,
         'DATA_DIR', data, 'DATASET.NUM_CLASSES', 10, 'DATASET.IMAGE_SIZE', 32, 'DATASET.CROP_PCT', 1.0,
         'SAVE_PATH', tmp_path / 'test', 'WORKERS', 1, 'NET.EMA.USE', 'False')
    with open(one(str(tmp_path / 'test' / '*' / 'results.json'))) as f:
        results = json.load(f)
    assert results['images'] == 355
    assert results['top1'] > 50.0, results['top1']
