"""``tools/main.py test`` end to end, with timm + PyTorch as the reference.

The val folder's labels are the reference network's own predictions (timm's eval
pipeline + PyTorch), so evaluating the same ``.pth.tar`` through our pipeline must
score (nearly) 100% top-1; >= 98% is required, the margin being for near-ties.
"""
import glob
import json
import os

import numpy as np
import pytest
import timm.data
import torch
from PIL import Image

import cli
from timm_reference import build_timm_cream, published_table, randomize, save_official_checkpoint

NUM_CLASSES = 4
NUM_IMAGES = 23          # odd, so 2 processes get unequal shards
ARCH = published_table()['14']['arch']


def _random_image(rng):
    h, w = rng.randint(50, 140, size=2)
    base = rng.rand(3) * 255
    noise = rng.rand(h, w, 3) * rng.uniform(20, 200)
    ramp = np.linspace(0, rng.uniform(-100, 100), w)[None, :, None]
    return Image.fromarray(np.clip(base + noise + ramp, 0, 255).astype('uint8'))


def spread_predictions(ref, images):
    """Make a random network predict every class (class folders may not be empty): the
    classifier becomes a nearest-prototype one over the centred pre-logit features of the
    first NUM_CLASSES images. The labels are then read from this network."""
    feats = ref.forward_head(ref.forward_features(images), pre_logits=True)
    mean = feats.mean(0)
    protos = feats[:NUM_CLASSES] - mean
    protos = protos / protos.norm(dim=1, keepdim=True)
    ref.classifier.weight.copy_(protos)
    ref.classifier.bias.copy_(-(protos @ mean))


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    """A .pth.tar of a random 4-class Cream-14 and a val folder labelled by its predictions."""
    root = tmp_path_factory.mktemp('eval')
    ref = randomize(build_timm_cream(ARCH, num_classes=NUM_CLASSES), seed=7, gain=2.0)
    ckpt = root / '14.pth.tar'
    transform = timm.data.create_transform(64, is_training=False, interpolation='bicubic', crop_pct=0.875)
    rng = np.random.RandomState(0)
    staged = root / 'staged'
    staged.mkdir()
    batch = []
    for i in range(NUM_IMAGES):
        path = staged / f'img_{i:03d}.JPEG'
        _random_image(rng).save(path, quality=90)
        batch.append(transform(Image.open(path).convert('RGB')))
    with torch.no_grad():
        spread_predictions(ref, torch.stack(batch))
        labels = ref(torch.stack(batch)).argmax(1).tolist()
    save_official_checkpoint(ref, ckpt, ema=ref)
    assert len(set(labels)) == NUM_CLASSES, f'every class needs an image, got labels {labels}'
    for i, label in enumerate(labels):
        dest = root / 'data' / 'val' / f'class_{label}'
        dest.mkdir(parents=True, exist_ok=True)
        os.replace(staged / f'img_{i:03d}.JPEG', dest / f'img_{i:03d}.JPEG')
    return root


def run_main(*args, timeout=600):
    return cli.run_main(args, timeout)


def base_args(root, out, *extra):
    return ['test', 'configs/test.yaml', 'RESUME_PATH', root / '14.pth.tar', 'DATA_DIR', root / 'data',
            'SAVE_PATH', out, 'DATASET.NUM_CLASSES', NUM_CLASSES, 'DATASET.BATCH_SIZE', 4, 'WORKERS', 1, *extra]


def read_results(out):
    files = glob.glob(os.path.join(str(out), '*', 'results.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.load(f)


@pytest.mark.parametrize('inference', ['auto', 'paddle', 'onnxruntime', 'openvino'])
def test_scores_reference_predictions(labelled, tmp_path, inference):
    proc = run_main(*base_args(labelled, tmp_path / 'out', 'INFERENCE', inference))
    assert proc.returncode == 0, proc.stderr
    res = read_results(tmp_path / 'out')
    assert res['images'] == NUM_IMAGES
    assert res['top1'] >= 98.0
    # the runtime that served, checked against dygraph on the first batch (no fallback here)
    assert res['inference'] in (('paddle', 'onnxruntime', 'openvino', 'dygraph') if inference == 'auto'
                                else (inference,))
    checked = res['inference_check']
    assert all(checked[name]['max_rel'] <= 1e-4 for name in ('paddle', 'onnxruntime', 'openvino')
               if name in checked)
    assert f"inference: {res['inference']}" in proc.stdout and 'warning' not in proc.stdout
    assert res['model'] == 'Cream-14' and res['params'] > 0 and res['macs'] > 0
    assert 'paper_top1' in res and 'top1_diff' in res
    assert 'Cream-14 top-1' in proc.stdout and 'MISMATCH' in proc.stdout  # 4 classes cannot match the paper
    assert os.path.exists(glob.glob(str(tmp_path / 'out' / '*' / 'test.log'))[0])
    assert os.path.exists(glob.glob(str(tmp_path / 'out' / '*' / 'test_config.yaml'))[0])


def test_two_processes_count_each_image_once(labelled, tmp_path):
    single = run_main(*base_args(labelled, tmp_path / 'one', 'INFERENCE', 'dygraph'))
    assert single.returncode == 0, single.stderr
    double = run_main(*base_args(labelled, tmp_path / 'two', 'NUM_GPU', 2, 'INFERENCE', 'dygraph'))
    assert double.returncode == 0, double.stdout[-2000:] + double.stderr[-2000:]
    one, two = read_results(tmp_path / 'one'), read_results(tmp_path / 'two')
    assert two['processes'] == 2
    assert two['images'] == one['images'] == NUM_IMAGES
    assert two['top1'] == one['top1'] and two['top5'] == one['top5']
    assert abs(two['loss'] - one['loss']) < 1e-9


def assert_one_line_failure(proc, out, *words):
    assert proc.returncode != 0
    # tqdm draws progress bars on stderr; everything else there must be the one error line
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip() and 'it/s' not in line]
    assert len(lines) == 1 and lines[0].startswith('error:'), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert not glob.glob(os.path.join(str(out), '*', 'results.json'))


@pytest.mark.parametrize('mode', ['test', 'predict', 'evolve'])
def test_a_missing_runtime_package_is_one_line(labelled, tmp_path, monkeypatch, capsys, mode):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'openvino' else real(name, *a))
    args = base_args(labelled, tmp_path / 'out', 'INFERENCE', 'openvino')
    args[:2] = [mode, f'configs/{mode}.yaml' if mode != 'evolve' else 'configs/demo/evolve.yaml']
    if mode == 'predict':
        args += ['INPUT', labelled / 'data' / 'val']
    if mode == 'evolve':   # any file: the runtime is checked before the checkpoint is read
        args += ['RESUME_PATH', labelled / '14.pth.tar']
    capsys.readouterr()
    assert cli.load_main()([str(a) for a in args]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: INFERENCE openvino needs the package(s) openvino: pip install openvino "
                   "(or pip install 'paddle-cream[openvino]')"), err
    assert not (tmp_path / 'out').exists()


def test_missing_val_folder(labelled, tmp_path):
    out = tmp_path / 'out'
    proc = run_main(*base_args(labelled, out), 'DATA_DIR', tmp_path / 'nowhere')
    assert_one_line_failure(proc, out, 'val')


def test_config_typo_names_closest_key(labelled, tmp_path):
    out = tmp_path / 'out'
    proc = run_main(*base_args(labelled, out), 'DATASET.BATCH_SIZ', 8)
    assert_one_line_failure(proc, out, 'DATASET.BATCH_SIZ', 'DATASET.BATCH_SIZE')


def test_checkpoint_of_another_model(labelled, tmp_path):
    out = tmp_path / 'out'
    proc = run_main(*base_args(labelled, out), 'NET.SELECTION', 43)
    assert_one_line_failure(proc, out, 'does not fit')


def test_num_classes_mismatch(labelled, tmp_path):
    out = tmp_path / 'out'
    proc = run_main(*base_args(labelled, out), 'DATASET.NUM_CLASSES', 10)
    assert_one_line_failure(proc, out, 'classifier')


def _copy_tree(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_empty_class_folder(labelled, tmp_path):
    data = _copy_tree(labelled / 'data', tmp_path / 'data')
    (data / 'val' / 'class_9_empty').mkdir()
    out = tmp_path / 'out'
    proc = run_main(*base_args(labelled, out), 'DATA_DIR', data)
    assert_one_line_failure(proc, out, 'class_9_empty')


def test_corrupt_image_stops_or_is_skipped(labelled, tmp_path):
    data = _copy_tree(labelled / 'data', tmp_path / 'data')
    bad = data / 'val' / 'class_0' / 'zz_broken.JPEG'
    bad.write_bytes(b'\xff\xd8\xff\xe0 this is not really a jpeg')
    out = tmp_path / 'out'
    proc = run_main(*base_args(labelled, out), 'DATA_DIR', data)
    assert_one_line_failure(proc, out, 'zz_broken.JPEG')
    proc = run_main(*base_args(labelled, out), 'DATA_DIR', data, 'SKIP_CORRUPT', 'True')
    assert proc.returncode == 0, proc.stderr
    res = read_results(out)
    assert res['images'] == NUM_IMAGES and res['skipped'] == 1


def test_unknown_mode_and_missing_config(tmp_path):
    proc = run_main('tset', 'configs/test.yaml')
    assert_one_line_failure(proc, tmp_path, "unknown mode 'tset'", 'test')
    proc = run_main('test', tmp_path / 'missing.yaml')
    assert_one_line_failure(proc, tmp_path, 'missing.yaml')
