"""``retrain`` with ``NET.PRETRAINED`` (fine-tuning): every tensor of a retrained (.pdparams) or published-style
(.pth.tar) checkpoint is loaded but a classifier of another size, which stays new; another architecture, a
missing or hostile file is one error line before any run folder exists; a resume wins over PRETRAINED; retrain
checkpoints carry the class names."""
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from Paddle_Cream.config import load_config
from Paddle_Cream.engine.model_builder import build_model
from Paddle_Cream.engine.pretrained import load_pretrained
from pimm.utils import load_paddle_file, save_paddle_file

from cli import REPO_ROOT, load_main, read_rows, run_dir, run_main

FINETUNE = os.path.join(REPO_ROOT, 'configs', 'retrain', 'finetune.yaml')
ARCH = [[0], [0], [0], [0], [0], [0], [0]]
OTHER_ARCH = [[0], [1], [0], [0], [0], [0], [0]]
HEAD = ['classifier.weight', 'classifier.bias']
# 5 digits under new names whose sorted order is not the digits' order: labels are relabelled
SUBSET = {'digit_7': 'a_seven', 'digit_2': 'b_two', 'digit_9': 'c_nine', 'digit_0': 'd_zero', 'digit_5': 'e_five'}
SUBSET_NAMES = sorted(SUBSET.values())


def write_arch(path, arch):
    with open(path, 'w') as f:
        json.dump({'arch': arch}, f)
    return str(path)


def numpy_state(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture(scope='module')
def scratch(digits, tmp_path_factory):
    """A 1-epoch retrain of a tiny network on the 10 digits: its run folder (model_best.pdparams, arch.json)."""
    out = tmp_path_factory.mktemp('scratch')
    arch = write_arch(out / 'best_arch.json', ARCH)
    proc = run_main(['retrain', 'configs/demo/retrain.yaml', 'DATA_DIR', digits, 'SAVE_PATH', out, 'NET.ARCH_FILE', arch,
                     'EPOCHS', 1, 'DATASET.BATCH_SIZE', 16, 'WORKERS', 0, 'NET.EMA.DECAY', 0.9])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir(out, 'demo_retrain')


@pytest.fixture(scope='module')
def subset(digits, tmp_path_factory):
    """An ImageNet-style train/val folder of 5 of the digits, relabelled."""
    root = tmp_path_factory.mktemp('subset')
    for split in ('train', 'val'):
        for old, new in SUBSET.items():
            shutil.copytree(os.path.join(digits, split, old), root / split / new)
    return str(root)


def finetune_args(scratch, data, out, *extra):
    args = ['retrain', FINETUNE, 'NET.SELECTION', -1, 'NET.ARCH_FILE', os.path.join(scratch, 'arch.json'),
            'NET.PRETRAINED', os.path.join(scratch, 'model_best.pdparams'), 'DATA_DIR', data, 'SAVE_PATH', out,
            'DATASET.NUM_CLASSES', 5, 'DATASET.IMAGE_SIZE', 32, 'DATASET.BATCH_SIZE', 16, 'WORKERS', 0, 'EPOCHS', 1,
            'LOG_INTERVAL', 0, *extra]
    return [str(a) for a in args]


def child_model(scratch, num_classes):
    cfg = load_config(FINETUNE, ['NET.SELECTION', '-1', 'NET.ARCH_FILE', os.path.join(scratch, 'arch.json'),
                                 'DATASET.NUM_CLASSES', str(num_classes), 'DATASET.IMAGE_SIZE', '32'])
    return build_model(cfg)[0]


def test_load_pretrained_takes_every_tensor_but_a_new_classifier(scratch):
    best = os.path.join(scratch, 'model_best.pdparams')
    checkpoint = load_paddle_file(best)
    ema, raw = checkpoint['state_dict_ema'], checkpoint['state_dict']
    model = child_model(scratch, 5)
    fresh, lines = numpy_state(model), []
    report = load_pretrained(model, best, log=lines.append)
    after = numpy_state(model)
    assert report.reset == HEAD and sorted(report.loaded + HEAD) == sorted(after)
    for key in report.loaded:
        np.testing.assert_array_equal(after[key], np.asarray(ema[key]), err_msg=key)
    assert any(not np.array_equal(np.asarray(ema[k]), np.asarray(raw[k])) for k in report.loaded)  # EMA, not raw
    assert any(not np.array_equal(after[k], fresh[k]) for k in report.loaded)
    assert after['classifier.weight'].shape == (1280, 5) and after['classifier.bias'].shape == (5,)
    assert np.asarray(ema['classifier.weight']).shape == (1280, 10)
    for key in HEAD:   # the new network's own initialisation, untouched
        np.testing.assert_array_equal(after[key], fresh[key])
    assert lines[0].startswith(f'NET.PRETRAINED: loaded {len(report.loaded)} tensors from {best} (state_dict_ema')
    assert 'has 10 classes, DATASET.NUM_CLASSES is 5: classifier.weight, classifier.bias freshly' in lines[1]


def test_same_number_of_classes_loads_the_classifier_too(scratch):
    best = os.path.join(scratch, 'model_best.pdparams')
    model = child_model(scratch, 10)
    report = load_pretrained(model, best)
    ema = load_paddle_file(best)['state_dict_ema']
    assert report.reset == [] and len(report.loaded) == len(model.state_dict())
    np.testing.assert_array_equal(model.classifier.weight.numpy(), np.asarray(ema['classifier.weight']))


@pytest.fixture(scope='module')
def published(tmp_path_factory):
    """Official-style .pth.tar checkpoints (1000 classes) of timm-built Cream-14 and Cream-43, and the
    EMA network of the Cream-14 one."""
    from timm_reference import build_timm_cream, published_table, randomize, save_official_checkpoint
    d, table = tmp_path_factory.mktemp('published'), published_table()
    nets = {}
    for name in ('14', '43'):
        raw, ema = randomize(build_timm_cream(table[name]['arch']), 0), randomize(build_timm_cream(table[name]['arch']), 1)
        save_official_checkpoint(raw, d / f'{name}.pth.tar', ema=ema)
        nets[name] = ema
    return d, nets['14']


def test_published_checkpoint_into_cream_14_with_7_classes(published):
    folder, ema = published
    model = build_model(load_config(FINETUNE, ['NET.SELECTION', '14', 'DATASET.NUM_CLASSES', '7']))[0]
    fresh = numpy_state(model)
    report = load_pretrained(model, str(folder / '14.pth.tar'))
    after = numpy_state(model)
    # the oracle: timm's EMA weights under Paddle's names (BN statistics renamed; the only Linear is the head)
    expected = {k.replace('running_mean', '_mean').replace('running_var', '_variance'): v.numpy()
                for k, v in ema.state_dict().items() if not k.endswith('num_batches_tracked')}
    assert report.reset == HEAD and report.checkpoint_classes == 1000
    assert sorted(report.loaded) == sorted(k for k in expected if k not in HEAD)
    for key in report.loaded:
        np.testing.assert_array_equal(after[key], expected[key], err_msg=key)
    for key in HEAD:
        np.testing.assert_array_equal(after[key], fresh[key])
    assert after['classifier.weight'].shape == (1280, 7)


def _hostile(path, marker):
    class Hostile:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': {'conv_stem.weight': Hostile()}}, f)
    return str(path)


@pytest.fixture
def bad_files(scratch, published, tmp_path):
    return {'cream43': str(published[0] / '43.pth.tar'), 'best': os.path.join(scratch, 'model_best.pdparams'),
            'other': write_arch(tmp_path / 'other.json', OTHER_ARCH),
            'evil_pd': _hostile(tmp_path / 'evil.pdparams', tmp_path / 'pwned'),
            'evil_pt': _hostile(tmp_path / 'evil.pth.tar', tmp_path / 'pwned')}


BAD_PRETRAINED = [   # (overrides, words of the one error line)
    (['NET.SELECTION', '14', 'NET.PRETRAINED', '{cream43}'],
     ['43.pth.tar', 'not a checkpoint of the configured network', 'unexpected key(s), first: blocks.4.1.']),
    (['NET.SELECTION', '-1', 'NET.ARCH_FILE', '{other}', 'NET.PRETRAINED', '{best}'],
     ['model_best.pdparams', 'not a checkpoint of the configured network', 'blocks.1.0', 'it holds the network']),
    (['NET.PRETRAINED', '/nonexistent/14.pth.tar'], ["NET.PRETRAINED '/nonexistent/14.pth.tar' not found"]),
    (['NET.PRETRAINED', '{evil_pd}'], ['NET.PRETRAINED', 'evil.pdparams']),
    (['NET.PRETRAINED', '{evil_pt}'], ['NET.PRETRAINED', 'evil.pth.tar']),
]


@pytest.mark.parametrize('extra, words', BAD_PRETRAINED, ids=['cream43_into_14', 'other_arch', 'missing',
                                                             'hostile_pdparams', 'hostile_pth'])
def test_bad_pretrained_is_one_line_before_any_run_folder(digits, bad_files, tmp_path, capsys, extra, words):
    out = tmp_path / 'out'
    code = load_main()([str(a) for a in ['retrain', FINETUNE, 'DATA_DIR', digits, 'SAVE_PATH', out,
                                         'DATASET.NUM_CLASSES', 10, 'WORKERS', 0,
                                         *[e.format(**bad_files) for e in extra]]])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith('error: '), err
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists() and not (tmp_path / 'pwned').exists()


@pytest.fixture(scope='module')
def finetuned(scratch, subset, tmp_path_factory):
    out = tmp_path_factory.mktemp('finetune')
    proc = run_main(finetune_args(scratch, subset, out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def test_finetune_run_trains_the_5_classes_and_stores_their_names(scratch, finetuned):
    out, proc = finetuned
    assert 'NET.PRETRAINED: loaded' in proc.stdout and 'classifier.weight, classifier.bias freshly' in proc.stdout
    d = run_dir(out, 'finetune')
    with open(os.path.join(d, 'retrain.log')) as f:
        assert 'NET.PRETRAINED: loaded' in f.read()
    assert len(read_rows(out, 'finetune')) == 1
    pretrained = load_paddle_file(os.path.join(scratch, 'model_best.pdparams'))['state_dict_ema']
    for name in ('last.pdparams', 'model_best.pdparams', 'checkpoint-0.pdparams'):
        checkpoint = load_paddle_file(os.path.join(d, name))
        assert checkpoint['args']['class_names'] == SUBSET_NAMES, name
        assert np.asarray(checkpoint['state_dict']['classifier.weight']).shape == (1280, 5)
    trained = checkpoint['state_dict']
    assert any(not np.array_equal(np.asarray(trained[k]), np.asarray(pretrained[k])) for k in pretrained
               if k not in HEAD)   # training moved the pretrained layers
    assert load_paddle_file(os.path.join(scratch, 'last.pdparams'))['args']['class_names'] == [
        f'digit_{i}' for i in range(10)]


def test_a_resume_wins_over_pretrained_and_reads_old_checkpoints(scratch, subset, finetuned):
    """A checkpoint written before class names were stored (args without them) still resumes; the
    resumed run ignores NET.PRETRAINED and its new checkpoints have the names."""
    out, _ = finetuned
    d = run_dir(out, 'finetune')
    last = os.path.join(d, 'last.pdparams')
    old = load_paddle_file(last)
    del old['args']['class_names']
    save_paddle_file(old, last)
    proc = run_main(finetune_args(scratch, subset, out, 'AUTO_RESUME', True, 'EPOCHS', 2))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f'ignored: resuming from {last}' in proc.stdout and 'NET.PRETRAINED: loaded' not in proc.stdout
    assert 'continuing at epoch 1' in proc.stdout
    assert [int(r['epoch']) for r in read_rows(out, 'finetune')] == [0, 1]
    assert load_paddle_file(os.path.join(d, 'checkpoint-1.pdparams'))['args']['class_names'] == SUBSET_NAMES


def test_finetune_recipe_is_short_gentle_and_needs_the_weights_on_the_command_line():
    cfg = load_config(FINETUNE)
    assert cfg.NET.PRETRAINED == '' and cfg.NET.SELECTION == 14 and cfg.DATASET.IMAGE_SIZE == 0
    assert 10 <= cfg.EPOCHS <= 20 and cfg.WARMUP_EPOCHS >= 1 and cfg.COOLDOWN_EPOCHS == 0
    assert cfg.SCHED == 'cosine' and cfg.AUGMENTATION.AA == '' and cfg.AUGMENTATION.RE_PROB == 0.0
    assert not cfg.AUTO_RESUME   # a second fine-tuning the same day is refused, not taken for a resume
