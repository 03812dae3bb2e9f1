"""``tools/main.py predict`` end to end, with timm + PyTorch as the reference.

Each image's reference label is the top-1 class timm's Cream-14 (random weights, its own eval
transform: bicubic, crop 0.875, ImageNet mean/std) gives it; our predict on the same ``.pth.tar``
must agree on >= 98% of the images (the margin is for near-ties) and write a complete predictions.json.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import paddle
import pytest
import timm.data
import torch
from PIL import Image, ImageDraw

import cli
from timm_reference import build_timm_cream, published_table, randomize, save_official_checkpoint

from Paddle_Cream.config import load_config
from Paddle_Cream.engine.model_builder import build_model
from Paddle_Cream.engine.labels import class_labels
from Paddle_Cream.engine.run_predict import top_k
from pimm.data import imagenet_class_names, imagenet_synsets

ARCH = published_table()['14']['arch']
CHILD_ARCH = [[0], [3], [3], [3, 1], [3], [3], [0]]   # a searched network, not a published one
NUM_IMAGES = 50
NAMES = imagenet_class_names()


def _structured_image(rng):
    """A gradient background with a few shapes and noise, of a random size and aspect."""
    h, w = rng.randint(48, 130, size=2)
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    colors = rng.rand(3, 3) * 255
    pixels = colors[0] * (1 - x) * (1 - y) + colors[1] * x + colors[2] * y * (1 - x)
    pixels = pixels + rng.randn(h, w, 3) * rng.uniform(5, 40)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype('uint8'))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, 5)):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        box = [x0, y0, x0 + rng.randint(5, w), y0 + rng.randint(5, h)]
        fill = tuple(int(c) for c in rng.randint(0, 256, size=3))
        (draw.ellipse if rng.rand() < 0.5 else draw.rectangle)(box, fill=fill)
    return img


def _image_path(root, i):
    sub = ['', 'a', os.path.join('a', 'deep'), 'b'][i % 4]  # nested sub-folders, images at the top too
    ext = ['.jpg', '.png', '.JPEG', '.bmp'][i % 4]
    return os.path.join(root, sub, f'img_{i:03d}{ext}')


def calibrate(ref, images, logit_std=3.0):
    """Make the random network's probabilities informative: at gain 2 its pre-logit features are in
    the thousands and one class takes all the probability. Centring the classifier on these images'
    mean feature and scaling its logits to ``logit_std`` spreads the top-1 over many classes and
    leaves distinct top-5 probabilities to compare (the weights saved are these)."""
    feats = ref.forward_head(ref.forward_features(images), pre_logits=True)
    mean = feats.mean(0)
    weight = ref.classifier.weight
    weight.mul_(logit_std / ((feats - mean) @ weight.T).std().item())
    ref.classifier.bias.copy_(-(weight @ mean))


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """A .pth.tar of a random 1000-class Cream-14 and a folder of images with timm's predictions."""
    root = tmp_path_factory.mktemp('predict')
    ref = randomize(build_timm_cream(ARCH), seed=11, gain=2.0)
    raw = randomize(build_timm_cream(ARCH), seed=12, gain=2.0)  # the non-EMA weights must not be used
    folder = str(root / 'photos')
    transform = timm.data.create_transform(64, is_training=False, interpolation='bicubic', crop_pct=0.875)
    rng = np.random.RandomState(0)
    paths, batch = [], []
    for i in range(NUM_IMAGES):
        path = _image_path(folder, i)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _structured_image(rng).save(path, **({'quality': 90} if path.lower().endswith(('jpg', 'jpeg')) else {}))
        paths.append(path)
        batch.append(transform(Image.open(path).convert('RGB')))
    with torch.no_grad():
        calibrate(ref, torch.stack(batch))
        probs = torch.softmax(ref(torch.stack(batch)).double(), dim=1).numpy()
    save_official_checkpoint(raw, root / '14.pth.tar', ema=ref)
    # what predict must leave out: non-images, a hidden file, and one corrupt image (counted as skipped)
    with open(os.path.join(folder, 'notes.txt'), 'w') as f:
        f.write('not an image\n')
    with open(os.path.join(folder, 'a', 'labels.csv'), 'w') as f:
        f.write('x,y\n')
    Image.new('RGB', (20, 20)).save(os.path.join(folder, 'b', '.hidden.png'))
    broken = os.path.join(folder, 'a', 'deep', 'broken.jpg')
    with open(broken, 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 truncated, not really a jpeg')
    return dict(root=root, folder=folder, paths=paths, probs=probs, broken=broken)


def _read(path):
    with open(path) as f:
        return json.load(f)


def test_predict_agrees_with_timm(photos, tmp_path):
    out = tmp_path / 'out'
    # batches of 8 with a loader worker: several batches, decoded in another process
    proc = cli.run_main(['predict', 'configs/predict.yaml', 'NET.SELECTION', 14, 'RESUME_PATH',
                         photos['root'] / '14.pth.tar', 'INPUT', photos['folder'], 'SAVE_PATH', out,
                         'MODEL', 'cream14_predict', 'DATASET.BATCH_SIZE', 8, 'WORKERS', 1], timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = cli.run_dir(out, 'cream14_predict')
    entries = _read(os.path.join(run, 'predictions.json'))
    summary = _read(os.path.join(run, 'predict.json'))

    expected = {os.path.relpath(p, photos['folder']): i for i, p in enumerate(photos['paths'])}
    got = [os.path.relpath(e['path'], photos['folder']) for e in entries]
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))  # every readable image, exactly once
    assert got == sorted(got)  # the documented order: sorted relative paths

    reference = photos['probs']
    ref_top1 = reference.argmax(1)
    assert len(set(ref_top1.tolist())) >= 10, f'timm predicts too few classes to test anything: {ref_top1}'
    agree = 0
    for rel, entry in zip(got, entries):
        topk = entry['topk']
        assert len(topk) == 5
        probs = [c['prob'] for c in topk]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
        assert all(c['label'] == NAMES[c['index']] for c in topk)  # 1000 classes: ImageNet names
        i = expected[rel]
        if topk[0]['index'] == ref_top1[i]:
            agree += 1
            # timm's 5 largest probabilities, in order (float32 logits of a network whose logits are a
            # small difference of large numbers: a few 1e-4 apart)
            assert np.allclose(probs, np.sort(reference[i])[::-1][:5], atol=1e-3), (rel, probs)
    assert agree >= 0.98 * NUM_IMAGES, f'{agree} of {NUM_IMAGES} agree with timm'

    assert summary['labels'] == 'imagenet' and summary['topk'] == 5
    assert (summary['images'], summary['predicted'], summary['skipped']) == (NUM_IMAGES + 1, NUM_IMAGES, 1)
    assert summary['unreadable'] == [photos['broken']]
    assert summary['model'] == 'Cream-14' and summary['input_size'] == 64
    assert 'skipped ' + photos['broken'] in proc.stdout  # the reason, on one log line
    assert f'predicted {NUM_IMAGES} of {NUM_IMAGES + 1} images, skipped 1 unreadable' in proc.stdout
    table = [line for line in proc.stdout.splitlines() if ' | ' in line and '%' in line]
    assert len(table) == 10
    # nothing else: no temporary file left by the atomic writes
    assert sorted(os.listdir(run)) == ['.run.lock', 'predict.json', 'predict.log', 'predict_config.yaml',
                                       'predictions.json']   # .run.lock: the lock of the folder's owner


def test_imagenet_synsets_are_timms_in_class_index_order():
    assert imagenet_synsets() == timm.data.ImageNetInfo().label_names()


def test_an_imagenet_val_layout_is_scored_by_its_wordnet_ids(photos, tmp_path, capsys):
    """The usual ImageNet val folder names each class folder by WordNet id: a 1000-class network scores them
    against the class timm's ImageNetInfo gives that id (hits counted here from predictions.json)."""
    val = tmp_path / 'val'
    folders = ['n01440764', timm.data.ImageNetInfo().index_to_label_name(int(photos['probs'][3].argmax())), 'misc']
    for i, path in enumerate(photos['paths'][:7]):
        os.makedirs(val / folders[i // 3], exist_ok=True)
        shutil.copy(path, val / folders[i // 3] / os.path.basename(path))
    code, out, err = _predict_in_process(capsys, 'NET.SELECTION', 14, 'RESUME_PATH', photos['root'] / '14.pth.tar',
                                         'INPUT', val, 'SAVE_PATH', tmp_path / 'o')
    assert code == 0, err
    run = cli.run_dir(tmp_path / 'o', 'predict')
    entries = _read(os.path.join(run, 'predictions.json'))
    synsets = timm.data.ImageNetInfo().label_names()
    scored = [(e, synsets.index(os.path.basename(os.path.dirname(e['path'])))) for e in entries
              if os.path.basename(os.path.dirname(e['path'])) != 'misc']
    top1 = 100 * sum(e['topk'][0]['index'] == truth for e, truth in scored) / 6
    top5 = 100 * sum(truth in [c['index'] for c in e['topk']] for e, truth in scored) / 6
    assert top1 > 0   # the second folder is named after timm's top-1 of one of its images
    assert _read(os.path.join(run, 'predict.json'))['accuracy'] == {
        'top1': pytest.approx(top1), 'top5': pytest.approx(top5), 'images': 6, 'unscored': 1}


def _paddle_checkpoint(path, num_classes, args=None, *overrides):
    """A Paddle checkpoint (``state_dict``, and ``args`` when given) of a random network of the predict config."""
    paddle.seed(0)
    cfg = load_config('configs/predict.yaml', ['DATASET.NUM_CLASSES', str(num_classes), *map(str, overrides)])
    state = {'state_dict': build_model(cfg)[0].state_dict()}
    if args is not None:
        state['args'] = args
    paddle.save(state, str(path))
    return str(path)


def _predict_in_process(capsys, *args):
    code = cli.load_main()(['predict', 'configs/predict.yaml', 'WORKERS', 0, 'INFERENCE', 'dygraph',
                            *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_retrain_checkpoint_class_names(photos, tmp_path, capsys):
    # a network retrained on a 3-class folder: its arch.json, and its class names in the checkpoint's args
    arch_file = tmp_path / 'arch.json'
    arch_file.write_text(json.dumps({'arch': CHILD_ARCH}))
    net = ['NET.SELECTION', -1, 'NET.ARCH_FILE', arch_file, 'DATASET.IMAGE_SIZE', 64]
    names = ['cat', 'dog', 'fish']
    ckpt = _paddle_checkpoint(tmp_path / 'best.pdparams', 3, {'arch': CHILD_ARCH, 'class_names': names}, *net)
    folder = os.path.join(photos['folder'], 'a')  # a sub-folder: a smaller run
    code, out, err = _predict_in_process(capsys, 'RESUME_PATH', ckpt, 'INPUT', folder, 'SAVE_PATH', tmp_path / 'o',
                                         'DATASET.NUM_CLASSES', 3, *net)
    assert code == 0, err
    run = cli.run_dir(tmp_path / 'o', 'predict')
    entries = _read(os.path.join(run, 'predictions.json'))
    assert len(entries) == len(glob.glob(os.path.join(folder, '**', 'img_*'), recursive=True))
    assert all(len(e['topk']) == 3 and [c['label'] for c in e['topk']] == [names[c['index']] for c in e['topk']]
               for e in entries)
    summary = _read(os.path.join(run, 'predict.json'))
    assert (summary['labels'], summary['model'], summary['arch']) == ('checkpoint', 'ChildNet', CHILD_ARCH)


def test_single_image_without_class_names_gets_indices(photos, tmp_path, capsys):
    ckpt = _paddle_checkpoint(tmp_path / 'plain.pdparams', 7)
    code, out, err = _predict_in_process(capsys, 'RESUME_PATH', ckpt, 'INPUT', photos['paths'][0],
                                         'SAVE_PATH', tmp_path / 'o', 'DATASET.NUM_CLASSES', 7, 'PREDICT.TOPK', 4)
    assert code == 0, err
    entries = _read(os.path.join(cli.run_dir(tmp_path / 'o', 'predict'), 'predictions.json'))
    assert [e['path'] for e in entries] == [photos['paths'][0]]
    assert [c['label'] for c in entries[0]['topk']] == [str(c['index']) for c in entries[0]['topk']]
    assert len(entries[0]['topk']) == 4


def test_class_label_sources(tmp_path):
    three = _paddle_checkpoint(tmp_path / 'three.pdparams', 3, {'class_names': ['x', 'y', 'z']})
    assert class_labels(three, 3)[:2] == (['x', 'y', 'z'], 'checkpoint')
    labels, source, note = class_labels(three, 1000)  # names that do not fit: not used, and said so
    assert source == 'imagenet' and labels[0] == 'tench' and labels[207] == 'golden retriever'
    assert 'names 3 classes' in note
    labels, source, _ = class_labels(_paddle_checkpoint(tmp_path / 'bad.pdparams', 2, {'class_names': 'xy'}), 2)
    assert (labels, source) == (['0', '1'], 'index')


def test_imagenet_names_need_no_timm():
    code = ('import sys; sys.modules["timm"] = None\n'
            'from pimm.data.class_names import imagenet_class_names as f\n'
            'n = f(); print(len(n), n[0], "|", n[207], "|", n[999])')
    proc = subprocess.run([sys.executable, '-c', code], cwd=cli.REPO_ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=cli.REPO_ROOT))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['1000', 'tench', '|', 'golden', 'retriever', '|', 'toilet', 'tissue']
    assert len(NAMES) == 1000 and all(n and n == n.strip() for n in NAMES)


def test_top_k_orders_and_breaks_ties_by_index():
    indices, probs = top_k(np.array([[0., 2., 2., -1.], [5., 0., 0., 0.]]), 3)
    assert indices.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert np.allclose(probs.sum(1) <= 1, True) and np.all(np.diff(probs, axis=1) <= 0)


@pytest.fixture
def bad_inputs(photos, tmp_path):
    empty = tmp_path / 'no_images'
    (empty / 'sub').mkdir(parents=True)
    (empty / 'sub' / 'readme.txt').write_text('x')
    (empty / '.hidden.jpg').write_bytes(b'')
    loop = tmp_path / 'loop'
    (loop / 'inner').mkdir(parents=True)
    Image.new('RGB', (8, 8)).save(loop / 'inner' / 'x.png')
    os.symlink('..', loop / 'inner' / 'back')
    text = tmp_path / 'notes.txt'
    text.write_text('x')
    ckpt = str(photos['root'] / '14.pth.tar')
    return {
        'unset INPUT': (['INPUT', '', 'RESUME_PATH', ckpt], 'set INPUT'),
        'missing INPUT': (['INPUT', tmp_path / 'nowhere', 'RESUME_PATH', ckpt], 'nowhere\' not found'),
        'no images': (['INPUT', empty, 'RESUME_PATH', ckpt], 'no images in the folder'),
        'missing RESUME_PATH': (['INPUT', photos['folder'], 'RESUME_PATH', tmp_path / 'gone.pth.tar'],
                                'gone.pth.tar\' not found'),
        'unset RESUME_PATH': (['INPUT', photos['folder']], 'set RESUME_PATH'),
        'not an image': (['INPUT', text, 'RESUME_PATH', ckpt], 'not an image file'),
        'corrupt single image': (['INPUT', photos['broken'], 'RESUME_PATH', ckpt], 'broken.jpg'),
        'symlink loop': (['INPUT', loop, 'RESUME_PATH', ckpt], '(a loop)'),
        'several processes': (['INPUT', photos['folder'], 'RESUME_PATH', ckpt, 'NUM_GPU', 2], 'NUM_GPU 1'),
    }


def test_bad_input_is_one_error_line_and_writes_nothing(bad_inputs, tmp_path, capsys):
    main = cli.load_main()
    for case, (args, words) in bad_inputs.items():
        out = tmp_path / f'out_{case.replace(" ", "_")}'
        code = main(['predict', 'configs/predict.yaml', 'SAVE_PATH', str(out), *map(str, args)])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1, case
        assert len(lines) == 1 and lines[0].startswith('error:') and words in lines[0], (case, err)
        assert not os.path.exists(out), case  # no run folder


def test_bad_input_from_the_command_line(tmp_path):
    out = tmp_path / 'out'
    proc = cli.run_main(['predict', 'configs/predict.yaml', 'INPUT', tmp_path / 'nowhere', 'SAVE_PATH', out],
                        timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: INPUT '{tmp_path / 'nowhere'}' not found"]
    assert not os.path.exists(out)


@pytest.fixture(scope='module')
def digit_folders(digits, tmp_path_factory):
    """The digits' val split as it is (every folder a class), partly (two class folders and one named like none)
    and not at all (no folder named like a class), and a 10-class network knowing the digits' class names."""
    import shutil
    root = tmp_path_factory.mktemp('labelled')
    val = os.path.join(digits, 'val')
    names = sorted(os.listdir(val))
    partly, unlabelled = str(root / 'partly'), str(root / 'unlabelled')
    for name in names[:2]:
        shutil.copytree(os.path.join(val, name), os.path.join(partly, name))
    shutil.copytree(os.path.join(val, names[2]), os.path.join(partly, 'unsorted'))
    shutil.copytree(os.path.join(val, names[3]), os.path.join(unlabelled, 'photos'))
    arch_file = root / 'arch.json'
    arch_file.write_text(json.dumps({'arch': CHILD_ARCH}))
    net = ['NET.SELECTION', -1, 'NET.ARCH_FILE', arch_file, 'DATASET.IMAGE_SIZE', 32]
    ckpt = _paddle_checkpoint(root / 'digits.pdparams', 10, {'arch': CHILD_ARCH, 'class_names': names}, *net)
    return dict(labelled=val, partly=partly, unlabelled=unlabelled, args=['RESUME_PATH', ckpt, *net])


@pytest.mark.parametrize('case', ['labelled', 'partly', 'unlabelled'])
def test_a_folder_of_class_folders_gets_its_accuracy(digit_folders, tmp_path, capsys, case):
    """An image in a folder named like one of the network's classes is scored against it: top-1 and top-5 in the
    log and predict.json, as counted here from predictions.json; a folder without such names gets none."""
    code, out, err = _predict_in_process(capsys, 'INPUT', digit_folders[case], 'SAVE_PATH', tmp_path / 'o',
                                         'DATASET.NUM_CLASSES', 10, *digit_folders['args'])
    assert code == 0, err
    run = cli.run_dir(tmp_path / 'o', 'predict')
    entries = _read(os.path.join(run, 'predictions.json'))
    accuracy = _read(os.path.join(run, 'predict.json'))['accuracy']
    assert isinstance(entries, list)
    scored = [e for e in entries if os.path.basename(os.path.dirname(e['path'])).startswith('digit_')]
    if case == 'unlabelled':
        assert accuracy is None and 'accuracy' not in out
        return
    truth = [os.path.basename(os.path.dirname(e['path'])) for e in scored]
    top1 = 100 * sum(e['topk'][0]['label'] == t for e, t in zip(scored, truth)) / len(scored)
    top5 = 100 * sum(t in [c['label'] for c in e['topk'][:5]] for e, t in zip(scored, truth)) / len(scored)
    assert accuracy == {'top1': pytest.approx(top1), 'top5': pytest.approx(top5), 'images': len(scored),
                        'unscored': len(entries) - len(scored)}
    (line,) = [line for line in out.splitlines() if 'accuracy' in line]
    assert f"accuracy, each image's folder naming its class: top-1 {top1:.2f}%, top-5 {top5:.2f}% over " in line
    if case == 'labelled':
        assert len(scored) == len(entries) == 20 and line.endswith(f'over {len(entries)} images')
    else:
        assert 0 < len(scored) < len(entries)
        assert line.endswith(f'over the {len(scored)} of {len(entries)} images in a folder named after a class '
                             f'(the other {len(entries) - len(scored)} are not scored)')
