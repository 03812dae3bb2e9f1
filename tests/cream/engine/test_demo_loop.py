"""The demo loop at tiny size, chained through the files each step writes:
Cream search -> retrain its best_arch.json -> test, export and predict with the retrained checkpoint, and
SPOS search -> evolve -> rank. Every step is the real command with configs/demo/."""
import glob
import json
import os

from cli import run_main

SEARCH = ['DATASET.BATCH_SIZE', 16, 'EPOCHS', 2, 'SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 150,
          'SUPERNET.META_STA_EPOCH', 0, 'SUPERNET.UPDATE_ITER', 3, 'SUPERNET.POOL_SIZE', 3, 'WORKERS', 0]


def main(*args):
    proc = run_main(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def refused(*args):
    """The one stderr line of a run that must fail."""
    proc = run_main(args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def one(pattern):
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_cream_search_retrain_test(digits, tmp_path):
    main('train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'search', *SEARCH)
    arch_file = one(str(tmp_path / 'search' / '*' / 'best_arch.json'))
    main('retrain', 'configs/demo/retrain.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'retrain',
         'NET.ARCH_FILE', arch_file, 'EPOCHS', 2, 'DATASET.BATCH_SIZE', 16, 'WORKERS', 0)
    best = one(str(tmp_path / 'retrain' / '*' / 'model_best.pdparams'))
    main('test', 'configs/demo/test.yaml', 'NET.ARCH_FILE', arch_file, 'RESUME_PATH', best,
         'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'test', 'WORKERS', 0)
    with open(one(str(tmp_path / 'test' / '*' / 'results.json'))) as f:
        results = json.load(f)
    with open(arch_file) as f:
        assert results['arch'] == json.load(f)['arch']
    assert results['images'] == 20
    # the retrained checkpoint tested without its architecture: the error says how to build it
    line = refused('test', 'configs/demo/test.yaml', 'RESUME_PATH', best, 'DATA_DIR', digits,
                   'SAVE_PATH', tmp_path / 'test2', 'WORKERS', 0)
    assert 'NET.SELECTION -1 NET.ARCH_FILE' in line and 'arch.json' in line
    # use it, as the README's loop does: the retrain's arch.json (its trained size) for export and predict
    trained = [*('NET.SELECTION', -1, 'NET.ARCH_FILE', os.path.join(os.path.dirname(best), 'arch.json')),
               'RESUME_PATH', best, 'DATASET.NUM_CLASSES', 10, 'DATASET.CROP_PCT', 1.0]
    main('export', 'configs/export.yaml', *trained, 'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'export')
    with open(one(str(tmp_path / 'export' / '*' / 'export.json'))) as f:
        exported = json.load(f)
    assert exported['preprocessing']['input_size'] == 32 and exported['arch'] == results['arch']
    assert exported['class_names'] == [f'digit_{i}' for i in range(10)]
    assert set(exported['parity']['report']['openvino']) == {'random batch', 'real images'}
    main('predict', 'configs/predict.yaml', *trained, 'INPUT', os.path.join(digits, 'val'), 'WORKERS', 0,
         'SAVE_PATH', tmp_path / 'predict')
    with open(one(str(tmp_path / 'predict' / '*' / 'predictions.json'))) as f:
        predictions = json.load(f)
    hits = [p['topk'][0]['label'] == os.path.basename(os.path.dirname(p['path'])) for p in predictions]
    assert len(hits) == 20 and 100.0 * sum(hits) / len(hits) == results['top1']   # test's pipeline, test's score


def test_spos_search_evolve_rank(digits, tmp_path):
    proc = main('train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'search',
                'SUPERNET.METHOD', 'spos', *SEARCH)
    ckpt = one(str(tmp_path / 'search' / '*' / 'checkpoint-last.pdparams'))
    # the printed next step is a whole command
    assert f'python tools/main.py evolve configs/demo/evolve.yaml RESUME_PATH {ckpt} DATA_DIR {digits}' in proc.stdout
    line = refused('train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'search',
                   'SUPERNET.METHOD', 'spos', *SEARCH)
    assert 'already holds a search run' in line  # never overwritten by a new run
    main('evolve', 'configs/demo/evolve.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'evolve',
         'RESUME_PATH', ckpt, 'SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 150,
         'EVOLVE.POPULATION', 4, 'EVOLVE.TOP_K', 2, 'EVOLVE.MUTATION_NUM', 2, 'EVOLVE.CROSSOVER_NUM', 2,
         'EVOLVE.GENERATIONS', 2, 'EVOLVE.BN_BATCHES', 2, 'EVOLVE.EVAL_BATCHES', 2, 'WORKERS', 0)
    with open(one(str(tmp_path / 'evolve' / '*' / 'best_arch.json'))) as f:
        best = json.load(f)
    assert best['flops'] <= 150 and best['method'] == 'spos'
    # no RESUME_PATH: rank takes the newest search checkpoint under SAVE_PATH
    main('rank', 'configs/demo/rank.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'search',
         'SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 150, 'RANK.NUM_PATHS', 3,
         'RANK.RETRAIN_EPOCHS', 1, 'EVOLVE.BN_BATCHES', 2, 'EVOLVE.EVAL_BATCHES', 2, 'WORKERS', 0)
    with open(one(str(tmp_path / 'search' / '*-demo_rank' / 'rank.json'))) as f:
        rank = json.load(f)
    assert rank['checkpoint'] == os.path.abspath(ckpt)
    assert 'kendall_tau' in rank and 'spearman_rho' in rank
    assert os.path.exists(one(str(tmp_path / 'search' / '*-demo_rank' / 'rank.png')))
    line = refused('rank', 'configs/demo/rank.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path / 'search',
                   'RESUME_PATH', ckpt, 'WORKERS', 0)
    assert 'already holds a rank run' in line


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
