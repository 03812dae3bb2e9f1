"""``tools/main.py evolve`` and ``rank`` at tiny size on a 1-epoch SPOS search checkpoint, and bad input."""
import glob
import json
import os

import numpy as np
import paddle
import pytest

from cli import REPO_ROOT, run_dir, run_main

COMMON = ['SUPERNET.FLOPS_MINIMUM', 0, 'SUPERNET.FLOPS_MAXIMUM', 150, 'DATASET.BATCH_SIZE', 16, 'WORKERS', 0]
EVOLVE = ['EVOLVE.POPULATION', 4, 'EVOLVE.TOP_K', 2, 'EVOLVE.MUTATION_NUM', 2, 'EVOLVE.CROSSOVER_NUM', 2,
          'EVOLVE.GENERATIONS', 2, 'EVOLVE.BN_BATCHES', 2, 'EVOLVE.EVAL_BATCHES', 1, 'EVOLVE.FLOPS_LIMIT', 130]


@pytest.fixture(scope='module')
def checkpoint(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp('search')
    proc = run_main(['train', 'configs/demo/train.yaml', 'DATA_DIR', digits, 'SAVE_PATH', out, 'EPOCHS', 1,
                     'SUPERNET.METHOD', 'spos', 'MODEL', 'spos', *COMMON])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return os.path.join(run_dir(out, 'spos'), 'checkpoint-last.pdparams')


def evolve_args(digits, out, checkpoint):
    return ['evolve', 'configs/demo/evolve.yaml', 'DATA_DIR', digits, 'SAVE_PATH', out, 'RESUME_PATH', checkpoint,
            *COMMON, *EVOLVE]


def test_evolve_writes_a_winner_whose_score_is_reproducible(digits, checkpoint, tmp_path):
    proc = run_main(evolve_args(digits, tmp_path, checkpoint))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    d = run_dir(tmp_path, 'demo_evolve')
    for name in ('best_arch.json', 'evolve_history.json', 'evolve.png', 'evolve.log'):
        assert os.path.exists(os.path.join(d, name)), name
    with open(os.path.join(d, 'best_arch.json')) as f:
        best = json.load(f)
    assert best['method'] == 'spos' and 'NET.ARCH_FILE' in best['retrain_command']
    # no latency table: the latency keys are there and None, as in train's best_arch.json
    assert best['latency_ms'] is None and best['latency_limit'] is None and best['latency_table'] is None
    assert [len(s) for s in best['arch'][1:-1]] == [1, 1, 2, 1, 1] and best['flops'] <= 130
    with open(os.path.join(d, 'evolve_history.json')) as f:
        history = json.load(f)['generations']
    assert len(history) == 2 and history[-1]['best_so_far'] == best['top1']
    with open(os.path.join(d, 'evolve.log')) as f:
        assert 'path scoring: ' in f.read()   # INFERENCE auto says which way it scores
    assert all(e['flops'] <= 130 for h in history for e in h['top_k'])

    # a fresh evaluation (same BN recomputation and batches) gives the recorded score
    from Paddle_Cream.config import load_config
    from Paddle_Cream.engine.path_eval import PathEvaluator, fixed_loaders, load_search_checkpoint
    from Paddle_Cream.search.flops_table import PathFlops
    cfg = load_config(os.path.join(REPO_ROOT, 'configs/demo/evolve.yaml'),
                      [str(a) for a in ['DATA_DIR', digits, 'RESUME_PATH', checkpoint, *COMMON, *EVOLVE]])
    hypernet, ident = load_search_checkpoint(cfg, checkpoint)
    evaluator = PathEvaluator(hypernet, *fixed_loaders(cfg, ident['image_size']))
    other = history[0]['top_k'][-1]['arch']
    evaluator.score(other)                      # another path first: its BN statistics must not leak
    assert evaluator.score(best['arch'])['top1'] == best['top1']
    assert PathFlops(hypernet, ident['resolution']).flops(best['arch']) == pytest.approx(best['flops'])

    # BN statistics are the plain average of the recalibration batches (checked on the stem BN)
    batches = [paddle.to_tensor(images) for images, _ in evaluator.bn_loader]
    with paddle.no_grad():
        means = [hypernet.conv_stem(x).mean(axis=[0, 2, 3]).numpy() for x in batches]
    assert len(batches) == 2
    np.testing.assert_allclose(hypernet.bn1._mean.numpy(), np.mean(means, axis=0), rtol=1e-4, atol=1e-5)


def test_evolve_with_a_latency_limit_writes_latency_within_it(digits, checkpoint, tmp_path):
    """The latency limit alone (SUPERNET.FLOPS_MAXIMUM 0: a search under a latency budget has no FLOPs one)."""
    from PIL import Image
    from latency import write_table
    from Paddle_Cream.search import PathLatency
    from pimm.utils import load_paddle_file
    ident = load_paddle_file(checkpoint)['search']
    file = write_table(tmp_path / 'table.json', ident['sta_num'], resolution=ident['resolution'],
                       num_classes=ident['num_classes'])
    table = PathLatency.load(file)
    fastest, slowest = table.bounds()
    limit = round(fastest + 0.45 * (slowest - fastest), 3)
    out = tmp_path / 'out'
    proc = run_main([*evolve_args(digits, out, checkpoint), 'EVOLVE.LATENCY_TABLE', file, 'EVOLVE.LATENCY_LIMIT',
                     limit, 'EVOLVE.FLOPS_LIMIT', 'None', 'SUPERNET.FLOPS_MAXIMUM', 0])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    d = run_dir(out, 'demo_evolve')
    with open(os.path.join(d, 'best_arch.json')) as f:
        best = json.load(f)
    assert best['latency_ms'] == pytest.approx(table.predict(best['arch'])) and best['latency_ms'] <= limit
    assert best['latency_limit'] == limit and best['flops_budget'] == [0, None]
    assert best['latency_table'] == dict(file=os.path.abspath(file), digest=table.digest(), settings=table.settings())
    with open(os.path.join(d, 'evolve_history.json')) as f:
        history = json.load(f)
    assert history['latency_limit'] == limit and history['latency_table']['digest'] == table.digest()
    top_k = [e for h in history['generations'] for e in h['top_k']]
    assert all(e['latency_ms'] <= limit and e['latency_ms'] == pytest.approx(table.predict(e['arch'])) for e in top_k)
    with open(os.path.join(d, 'evolve.log')) as f:
        last = [line for line in f if 'chosen architecture' in line][0]
    assert f"predicted latency {best['latency_ms']:.3f} ms (limit {limit} ms)" in last
    assert 'no FLOPs limit, latency <= ' in proc.stdout
    with Image.open(os.path.join(d, 'evolve.png')) as image:   # a second panel: top-k against latency
        assert image.width > 1.8 * image.height


@pytest.mark.parametrize('inference', ['paddle', 'onnxruntime', 'openvino', 'auto'])
def test_scoring_through_an_exported_runtime_equals_dygraph(digits, checkpoint, inference):
    from Paddle_Cream.config import load_config
    from Paddle_Cream.engine.path_eval import PathEvaluator, fixed_loaders, load_search_checkpoint
    cfg = load_config(os.path.join(REPO_ROOT, 'configs/demo/evolve.yaml'),
                      [str(a) for a in ['DATA_DIR', digits, 'RESUME_PATH', checkpoint, *COMMON, *EVOLVE]])
    hypernet, ident = load_search_checkpoint(cfg, checkpoint)
    loaders = fixed_loaders(cfg, ident['image_size'])
    path = [[0], [1], [3], [2, 4], [5], [0], [0]]
    expected = PathEvaluator(hypernet, *loaders).score(path)
    lines = []
    evaluator = PathEvaluator(hypernet, *loaders, inference=inference, threads=1, log=lines.append)
    got = evaluator.score(path)
    assert got['images'] == expected['images'] and got['top1'] == expected['top1']
    assert got['loss'] == pytest.approx(expected['loss'], rel=1e-4)
    assert not [line for line in lines if line.startswith('warning:')], lines
    if inference == 'auto':   # the first path is timed both ways, and the faster kept
        assert len(lines) == 1 and lines[0].startswith('path scoring: ')
        assert evaluator.inference in ('dygraph', 'paddle', 'onnxruntime', 'openvino')
        assert evaluator.score(path)['top1'] == expected['top1']


def test_rank_writes_correlations_and_plot(digits, checkpoint, tmp_path):
    no_flops_budget = [*COMMON[:2], 'SUPERNET.FLOPS_MAXIMUM', 0, *COMMON[4:]]   # as a latency-only search has
    proc = run_main(['rank', 'configs/demo/rank.yaml', 'DATA_DIR', digits, 'SAVE_PATH', tmp_path, 'RESUME_PATH',
                     checkpoint, *no_flops_budget, 'RANK.NUM_PATHS', 3, 'RANK.RETRAIN_EPOCHS', 1,
                     'EVOLVE.BN_BATCHES', 2])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    d = run_dir(tmp_path, 'demo_rank')
    assert os.path.exists(os.path.join(d, 'rank.png'))
    with open(os.path.join(d, 'rank.json')) as f:   # strict JSON: no Infinity for the missing FLOPs limit
        rank = json.load(f, parse_constant=lambda name: pytest.fail(f'rank.json holds {name}'))
    assert rank['flops_budget'] == [0, None]
    assert rank['num_paths'] == 3 and len(rank['paths']) == 3 and rank['retrain_epochs'] == 1
    assert len({str(p['arch']) for p in rank['paths']}) == 3
    for key in ('kendall_tau', 'spearman_rho'):   # None when one side is constant (tiny data)
        assert rank[key] is None or -1 <= rank[key] <= 1
    assert all(0 <= p['inherited_top1'] <= 100 and 0 <= p['retrained_top1'] <= 100 for p in rank['paths'])
    assert 'Kendall tau-b' in proc.stdout


@pytest.mark.parametrize('mode', ['evolve', 'rank'])
def test_bad_input_is_one_line(digits, tmp_path, mode):
    config = f'configs/demo/{mode}.yaml'
    proc = run_main([mode, config, 'DATA_DIR', digits, 'SAVE_PATH', tmp_path])
    assert proc.returncode != 0
    assert proc.stderr.strip().count('\n') == 0 and 'needs RESUME_PATH' in proc.stderr, proc.stderr
    not_search = tmp_path / 'weights.pdparams'
    paddle.save({'weight': paddle.zeros([2])}, str(not_search))
    proc = run_main([mode, config, 'DATA_DIR', digits, 'SAVE_PATH', tmp_path, 'RESUME_PATH', not_search])
    assert proc.returncode != 0
    assert proc.stderr.strip().count('\n') == 0 and 'not a search checkpoint' in proc.stderr, proc.stderr
    assert not glob.glob(os.path.join(str(tmp_path), f'*-demo_{mode}'))   # nothing written


def test_a_search_checkpoint_with_a_wrong_shaped_weight_is_refused(digits, checkpoint, tmp_path):
    # set_state_dict would skip such a key with a warning and score paths with random weights
    from pimm.utils import load_paddle_file
    state = load_paddle_file(checkpoint)
    key = next(k for k, v in state['state_dict'].items() if len(v.shape) == 4)
    state['state_dict'][key] = paddle.zeros([1, 1, 1, 1])
    damaged = tmp_path / 'damaged.pdparams'
    paddle.save(state, str(damaged))
    proc = run_main(evolve_args(digits, tmp_path / 'out', damaged))
    assert proc.returncode == 1 and proc.stderr.strip().count('\n') == 0, proc.stderr
    assert proc.stderr.startswith('error:') and key in proc.stderr, proc.stderr
    assert not glob.glob(str(tmp_path / 'out' / '*'))
