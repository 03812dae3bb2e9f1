"""``tools/main.py retrain`` at tiny size: outputs, the test mode reading the best checkpoint, exact AUTO_RESUME,
bad input as one line; and the official per-model retrain configs."""
import glob
import json
import os

import pytest

from Paddle_Cream.config import load_config
from Paddle_Cream.models import published_models
from pimm.utils import load_paddle_file

from cli import REPO_ROOT, load_main, read_rows, run_dir, run_main

ARCH = [[0], [0], [0], [0], [0], [0], [0]]
OTHER_ARCH = [[0], [1], [0], [0], [0], [0], [0]]
EPOCHS = 3
MODEL = 'demo_retrain'


# what an evolve with a latency table writes into best_arch.json beside the path
LATENCY = {'latency_ms': 3.25, 'latency_limit': 4.0,
           'latency_table': {'file': '/tables/latency_table.json', 'digest': 'abc', 'settings': {'threads': 1}}}


def write_arch(path, arch, **extra):
    with open(path, 'w') as f:
        json.dump({'arch': arch, 'flops': 1.0, **extra}, f)
    return str(path)


@pytest.fixture(scope='module')
def arch_file(tmp_path_factory):
    return write_arch(tmp_path_factory.mktemp('arch') / 'best_arch.json', ARCH, **LATENCY)


def retrain_args(data, out, arch, *extra):
    # a step schedule does not depend on EPOCHS, so 2 epochs + 1 resumed equal 3 straight
    args = ['retrain', 'configs/demo/retrain.yaml', 'DATA_DIR', data, 'SAVE_PATH', out, 'NET.ARCH_FILE', arch,
            'EPOCHS', EPOCHS, 'DATASET.BATCH_SIZE', 16, 'WORKERS', 0, 'SCHED', 'step', 'DECAY_EPOCHS', 1,
            'DECAY_RATE', 0.5, 'WARMUP_EPOCHS', 0, 'NET.EMA.DECAY', 0.9, *extra]
    return [str(a) for a in args]


@pytest.fixture(scope='module')
def retrained(digits, arch_file, tmp_path_factory):
    out = tmp_path_factory.mktemp('retrain')
    proc = run_main(retrain_args(digits, out, arch_file))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def test_retrain_writes_checkpoints_summary_and_curves(retrained):
    out, proc = retrained
    d = run_dir(out, MODEL)
    for name in ('model_best.pdparams', 'last.pdparams', 'summary.csv', 'curves.png', 'retrain.log',
                 'retrain_config.yaml', 'arch.json'):
        assert os.path.exists(os.path.join(d, name)), name
    assert len(glob.glob(os.path.join(d, 'checkpoint-*.pdparams'))) == EPOCHS   # CHECKPOINT_HIST 3 in the demo
    assert 'MACs' in proc.stdout and 'params' in proc.stdout
    rows = read_rows(out, MODEL)
    assert [int(r['epoch']) for r in rows] == list(range(EPOCHS))
    best = load_paddle_file(os.path.join(d, 'model_best.pdparams'))
    assert best['metric'] == max(float(r['eval_ema_top1']) for r in rows)   # ranked by EMA top-1
    assert best['args']['arch'] == ARCH and 'state_dict_ema' in best and 'optimizer' in best
    assert 'evaluate it: python tools/main.py test' in proc.stdout


def test_arch_json_carries_the_predicted_latency_of_best_arch(retrained):
    with open(os.path.join(run_dir(retrained[0], MODEL), 'arch.json')) as f:
        arch = json.load(f)
    assert arch == {'arch': ARCH, 'resolution': 32, 'latency_ms': LATENCY['latency_ms'],
                    'latency_table': LATENCY['latency_table']}


def test_test_mode_reads_the_best_checkpoint(retrained, tmp_path):
    """The command the run prints at the end, run as printed (plus where to write and dygraph for exactness)."""
    out, proc = retrained
    command = proc.stdout.split('evaluate it: ')[1].splitlines()[0].split()
    assert command[:4] == ['python', 'tools/main.py', 'test', 'configs/demo/test.yaml']   # a demo retrain's
    best = os.path.join(run_dir(out, MODEL), 'model_best.pdparams')
    assert command[command.index('RESUME_PATH') + 1] == best and 'NET.ARCH_FILE' in command
    test = run_main(command[2:] + ['INFERENCE', 'dygraph', 'WORKERS', 0, 'SAVE_PATH', tmp_path])
    assert test.returncode == 0, test.stderr[-3000:]
    with open(glob.glob(str(tmp_path / '*' / 'results.json'))[0]) as f:
        results = json.load(f)
    assert results['images'] == 20 and results['arch'] == ARCH
    assert abs(results['top1'] - load_paddle_file(best)['metric']) < 1e-6   # the EMA weights, as validated


def test_auto_resume_continues_the_run_exactly(digits, arch_file, retrained, tmp_path):
    full_out, _ = retrained
    first = run_main(retrain_args(digits, tmp_path, arch_file, 'EPOCHS', EPOCHS - 1))
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_main(retrain_args(digits, tmp_path, arch_file, 'AUTO_RESUME', True))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f'continuing at epoch {EPOCHS - 1}' in again.stdout
    full, resumed = read_rows(full_out, MODEL), read_rows(tmp_path, MODEL)
    for key in ('epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_ema_top1', 'lr'):
        assert [r[key] for r in full] == [r[key] for r in resumed], key
    assert len(glob.glob(os.path.join(run_dir(tmp_path, MODEL), 'checkpoint-*.pdparams'))) == EPOCHS


def test_two_processes_train_one_model_and_rank_0_writes(digits, arch_file, tmp_path):
    proc = run_main(retrain_args(digits, tmp_path, arch_file, 'NUM_GPU', 2, 'EPOCHS', 1, 'DATASET.BATCH_SIZE', 8))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    d = run_dir(tmp_path, MODEL)
    logs = sorted(glob.glob(os.path.join(d, 'retrain_launch_logs', 'workerlog.*')))
    assert len(logs) == 2
    with open(logs[0]) as f:
        assert '2 process(es)' in f.read()
    assert len(read_rows(tmp_path, MODEL)) == 1 and os.path.exists(os.path.join(d, 'model_best.pdparams'))
    assert not glob.glob(os.path.join(d, '.*.tmp'))


def test_every_recipe_option_runs(digits, arch_file, tmp_path):
    """Mixup + CutMix (soft targets), RandAugment, random erasing, random interpolation, drop-path, clipping,
    lr noise, AdamW, and the schedule stepped per update (so the 1-epoch warmup is done within epoch 0)."""
    proc = run_main(retrain_args(
        digits, tmp_path, arch_file, 'EPOCHS', 1, 'OPT', 'adamw', 'SCHED_ON_UPDATES', True,
        'WARMUP_EPOCHS', 1, 'LR_NOISE', '[0.5]', 'CLIP_GRAD', 1.0, 'NET.DROP_PATH_RATE', 0.1,
        'AUGMENTATION.MIXUP', 0.2, 'AUGMENTATION.CUTMIX', 1.0, 'AUGMENTATION.AA', 'rand-m9-mstd0.5',
        'AUGMENTATION.RE_PROB', 0.2, 'AUGMENTATION.RE_MODE', 'pixel', 'AUGMENTATION.TRAIN_INTERPOLATION', 'random'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = read_rows(tmp_path, MODEL)[0]
    assert float(row['lr']) > 1e-4 and float(row['train_loss']) > 0


@pytest.fixture(scope='module')
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('bad')
    (d / 'broken.json').write_text('{"arch": [[0], [3]')
    return {'outside': write_arch(d / 'outside.json', [[0], [6], [0], [0], [0], [0], [0]]),
            'broken': str(d / 'broken.json'), 'other': write_arch(d / 'other.json', OTHER_ARCH)}


BAD_INPUTS = [
    (['NET.ARCH_FILE', '/nonexistent/best_arch.json'], ['/nonexistent/best_arch.json', 'not found']),
    (['NET.ARCH_FILE', '{broken}'], ['broken.json', 'not a valid architecture file']),
    (['NET.ARCH_FILE', '{outside}'], ['choice 6', '0..5']),
    (['AMP', 'True'], ['AMP needs a GPU']),
    (['OPT', 'lamb'], ['OPT must be one of', 'rmsproptf']),
    (['DATASET.DEMO', "''", 'DATA_DIR', '/nonexistent/imagenet'], ['/nonexistent/imagenet/train']),
    (['NET.ARCH_FILE', '{other}', 'RESUME_PATH', '{last}'], ['arch=', '[1]', 'resume only with']),
    (['BATCHNORM.SYNC_BN', 'True', 'NUM_GPU', '2'], ['SYNC_BN needs GPUs']),
    (['BATCHNORM.BN_TF', 'True'], ['BN_TF, BN_MOMENTUM and BN_EPS are not used']),
    (['RECOVERY_INTERVAL', '100'], ['RECOVERY_INTERVAL 100', 'AUTO_RESUME']),
]


@pytest.mark.parametrize('extra, words', BAD_INPUTS)
def test_bad_input_is_one_line(digits, arch_file, retrained, bad_files, tmp_path, capsys, extra, words):
    files = dict(bad_files, last=os.path.join(run_dir(retrained[0], MODEL), 'last.pdparams'))
    extra = [e.format(**files) for e in extra]
    code = load_main()(retrain_args(digits, tmp_path / 'out', arch_file, *extra))
    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip() and 'it/s' not in line]
    assert len(lines) == 1 and lines[0].startswith('error:'), err
    for w in words:
        assert w in lines[0], lines[0]
    assert not glob.glob(str(tmp_path / 'out' / '*' / '*.pdparams'))


def test_a_second_run_on_the_same_day_needs_auto_resume(digits, arch_file, retrained, capsys):
    code = load_main()(retrain_args(digits, retrained[0], arch_file))
    assert code != 0 and 'AUTO_RESUME True continues it' in capsys.readouterr().err


@pytest.mark.parametrize('selection', ['14', '43', '114', '287', '481', '604'])
def test_official_retrain_configs(selection):
    cfg = load_config(os.path.join(REPO_ROOT, 'configs', 'retrain', f'{selection}.yaml'))
    assert cfg.NET.SELECTION == int(selection)
    assert cfg.DATASET.IMAGE_SIZE == published_models()[selection]['input_size']
    assert (cfg.OPT, cfg.OPT_EPS, cfg.MOMENTUM, cfg.LR, cfg.WEIGHT_DECAY) == ('rmsproptf', 1e-3, 0.9, 0.064, 1e-5)
    assert cfg.DATASET.BATCH_SIZE * cfg.NUM_GPU == 1024
    assert (cfg.WARMUP_EPOCHS, cfg.WARMUP_LR, cfg.EPOCHS) == (3, 1e-6, 500)
    if selection in ('14', '43'):
        assert (cfg.SCHED, cfg.DECAY_EPOCHS, cfg.DECAY_RATE) == ('step', 2.4, 0.973)
    else:
        assert cfg.SCHED == 'cosine'
    assert (cfg.NET.DROPOUT_RATE, cfg.NET.EMA.USE, cfg.NET.EMA.DECAY) == (0.2, True, 0.9999)
    aug = cfg.AUGMENTATION
    assert (aug.AA, aug.RE_PROB, aug.RE_MODE, aug.SMOOTHING, aug.TRAIN_INTERPOLATION) == (
        'rand-m9-mstd0.5', 0.2, 'pixel', 0.1, 'random')
    assert (aug.MIXUP, aug.CUTMIX) == (0.0, 0.0)


def test_generic_and_demo_retrain_configs():
    generic = load_config(os.path.join(REPO_ROOT, 'configs', 'retrain', 'retrain.yaml'))
    assert generic.NET.SELECTION == -1 and generic.OPT == 'rmsproptf' and generic.SCHED == 'cosine'
    demo = load_config(os.path.join(REPO_ROOT, 'configs', 'demo', 'retrain.yaml'))
    assert (demo.DATA_DIR, demo.DATASET.DEMO, demo.DATASET.NUM_CLASSES, demo.DATASET.IMAGE_SIZE) == (
        './data/digits', 'digits', 10, 32)
    assert demo.NET.SELECTION == -1 and demo.EPOCHS <= 10 and demo.DATASET.BATCH_SIZE <= 32


def test_a_retrain_step_after_an_overflow_is_applied(monkeypatch):
    """Issue 23, defect 1's review for retrain: its optimizer clears every gradient after each update, so an
    overflowed step (skipped) leaves nothing non-finite behind: the next one is applied, the scale halved once."""
    import types

    import numpy as np
    import paddle

    from fake_gpu import built_as_on_gpu
    from Paddle_Cream.engine.run_retrain import _step
    from Paddle_Cream.models.child_net import ChildNet
    from pimm.loss import LabelSmoothingCrossEntropy
    from pimm.optim import create_optimizer
    from pimm.utils.amp import GradScaler
    paddle.seed(0)
    net = ChildNet([[0], [0], [0], [0, 0], [0], [0], [0]], num_classes=10, input_size=32)
    net.train()
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024)
    training = types.SimpleNamespace(mixup=None, loss_fn=LabelSmoothingCrossEntropy(0.1), scaler=scaler, ema=None,
                                     optimizer=create_optimizer(net, opt='sgd', lr=0.05, momentum=0.9))
    rng = np.random.RandomState(0)
    x = paddle.to_tensor(rng.randn(4, 3, 32, 32).astype('float32'))
    y = paddle.to_tensor(rng.randint(0, 10, 4).astype('int64'))
    _step(net, training, x * float('inf'), y)
    assert scaler.overflows == 1
    for _ in range(3):
        before = net.classifier.weight.numpy().copy()
        _step(net, training, x, y)
        assert not np.array_equal(before, net.classifier.weight.numpy())
    assert scaler.overflows == 1 and float(scaler._scale.numpy()[0]) == 512


def _tiny_training(monkeypatch, amp: bool):
    import numpy as np
    import paddle

    from fake_gpu import built_as_on_gpu
    from Paddle_Cream.config import load_config
    from Paddle_Cream.engine.retrain_setup import build_training
    from Paddle_Cream.models.child_net import ChildNet
    from pimm.utils.amp import GradScaler
    paddle.seed(0)
    net = ChildNet([[0], [0], [0], [0, 0], [0], [0], [0]], num_classes=10, input_size=32)
    cfg = load_config('configs/demo/retrain.yaml', ['NET.EMA.USE', 'False'])
    training = build_training(cfg, net, 4)
    if amp:
        training.scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024)
    rng = np.random.RandomState(0)
    batches = [(paddle.to_tensor(rng.randn(4, 3, 32, 32).astype('float32')),
                paddle.to_tensor(rng.randint(0, 10, 4).astype('int64'))) for _ in range(4)]
    return net, training, batches


def test_a_non_finite_loss_on_another_rank_stops_this_one_too(monkeypatch):
    """Issue 23, defect 7: the decision is taken on the loss summed over the ranks (here another rank's NaN joins
    the sum), so every rank stops at the same iteration instead of one raising while the others wait."""
    import pytest

    import Paddle_Cream.engine.run_retrain as run_retrain
    from Paddle_Cream.engine import UserError
    net, training, batches = _tiny_training(monkeypatch, amp=False)
    calls = []

    def with_a_nan_rank(tensor):   # what the all-reduce gives when rank 1's loss at iteration 3 is NaN
        calls.append(1)
        return tensor + (float('nan') if len(calls) == 3 else 0.)
    monkeypatch.setattr(run_retrain, 'all_reduce_sum_', with_a_nan_rank)
    with pytest.raises(UserError, match='epoch 0, iteration 3: the training loss is nan'):
        run_retrain.train_one_epoch(net, training, batches, 0, 0, print, False, 0)


def test_under_amp_an_overflowing_loss_is_skipped_not_fatal(monkeypatch):
    """A non-finite loss under AMP is an overflow the scaler skips (the epoch goes on, its mean over the finite
    steps); once the scale is down to its floor of 1 the run stops."""
    import math

    import pytest

    import Paddle_Cream.engine.run_retrain as run_retrain
    from Paddle_Cream.engine import UserError
    net, training, batches = _tiny_training(monkeypatch, amp=True)
    batches[1] = (batches[1][0] * float('inf'), batches[1][1])
    loss, updates = run_retrain.train_one_epoch(net, training, batches, 0, 0, print, False, 0)
    assert math.isfinite(loss) and updates == 4 and training.scaler.overflows == 1
    training.scaler._scale.set_value(training.scaler._scale * 0 + 2.)   # halved to the floor by the overflow
    with pytest.raises(UserError, match='iteration 2: the training loss is'):
        run_retrain.train_one_epoch(net, training, batches, 1, 4, print, False, 0)


def test_the_training_and_validate_bars_end_on_the_epochs_figures(monkeypatch):
    """The epoch bar shows the mean loss so far (it used to show the last batch's), ending on the train loss
    the epoch returns and logs; the validate bar ends on the returned top-1 and loss."""
    import progress
    import Paddle_Cream.engine.evaluate as evaluate_module
    import Paddle_Cream.engine.run_retrain as run_retrain
    net, training, batches = _tiny_training(monkeypatch, amp=False)
    train_bars = progress.spy_on_bars(monkeypatch, run_retrain)
    loss, _ = run_retrain.train_one_epoch(net, training, batches, 0, 0, print, True, 0)
    (bar,) = train_bars
    assert bar['closed_with']['loss'] == f'{loss:.4f}'
    assert float(bar['postfixes'][0]['loss']) != pytest.approx(loss, abs=1e-3)   # a running mean: it moved
    val_bars = progress.spy_on_bars(monkeypatch, evaluate_module)
    metrics = run_retrain._validate(net, [(x.numpy(), y.numpy()) for x, y in batches], True, 'validate')
    (bar,) = val_bars
    assert bar['closed_with'] == {'top1': f"{metrics['top1']:.2f}", 'loss': f"{metrics['loss']:.4f}"}
