"""``tools/main.py export`` with timm + PyTorch as the reference.

Each published network is built by timm with random weights, saved as an official ``.pth.tar``
and exported through the command line; the Paddle Inference predictor and ONNX Runtime then run
the exported files (loaded here with their own APIs, not our runner) and must give timm's logits
to :data:`RTOL` (max absolute difference over the max absolute timm logit, per batch).
"""
import json
import os
import re

import numpy as np
import paddle.inference as pdi
import pytest
import timm.data
import torch
from PIL import Image

import cli
from latency import write_table
from timm_reference import build_timm_cream, published_table, randomize, save_official_checkpoint

from Paddle_Cream.engine import run_export

RTOL = 1e-4
TABLE = published_table()
DEPLOY_DOC = os.path.join(cli.REPO_ROOT, 'docs', 'deploy.md')


def relative(got, expected) -> float:
    expected = np.asarray(expected, np.float64)
    return float(np.abs(np.asarray(got, np.float64) - expected).max() / np.abs(expected).max())


def _image(rng, size=(150, 110)) -> Image.Image:
    noise = rng.rand(size[1], size[0], 3) * 120
    ramp = np.linspace(0, 120, size[0])[None, :, None]
    return Image.fromarray(np.clip(noise + ramp, 0, 255).astype('uint8'))


@pytest.fixture(scope='module')
def val_folder(tmp_path_factory):
    """An ImageNet-style val folder of a few images for the export's real-image parity batch."""
    root = tmp_path_factory.mktemp('val_data')
    rng = np.random.RandomState(3)
    for c in range(2):
        os.makedirs(root / 'val' / f'class{c}')
        for i in range(3):
            _image(rng).save(root / 'val' / f'class{c}' / f'{i}.png')
    return str(root)


def _export(tmp_path, selection, ckpt, data_dir, *extra):
    out = tmp_path / 'out'
    rc = cli.load_main()(['export', 'configs/export.yaml', 'NET.SELECTION', str(selection), 'RESUME_PATH',
                          str(ckpt), 'SAVE_PATH', str(out), 'MODEL', 'exp', 'DATA_DIR', data_dir, *map(str, extra)])
    return rc, out


def _predictor(folder):
    config = pdi.Config(os.path.join(folder, 'inference.json'), os.path.join(folder, 'inference.pdiparams'))
    config.disable_gpu()
    config.enable_mkldnn()
    predictor = pdi.create_predictor(config)

    def run(x):
        handle = predictor.get_input_handle(predictor.get_input_names()[0])
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(x)
        predictor.run()
        return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    return run


def _onnx(folder):
    import onnxruntime as ort
    session = ort.InferenceSession(os.path.join(folder, 'model.onnx'), providers=['CPUExecutionProvider'])
    return lambda x: session.run(None, {'x': x})[0]


def _openvino(folder, file='model.onnx'):
    import openvino as ov
    compiled = ov.Core().compile_model(os.path.join(folder, file), 'CPU')
    return lambda x: compiled(x)[0]


@pytest.mark.parametrize('selection', list(TABLE))
def test_exported_logits_equal_timm(tmp_path, val_folder, selection):
    raw = randomize(build_timm_cream(TABLE[selection]['arch']), seed=1)
    ema = randomize(build_timm_cream(TABLE[selection]['arch']), seed=2)   # the export must take these
    ckpt = tmp_path / f'{selection}.pth.tar'
    save_official_checkpoint(raw, ckpt, ema=ema)
    rc, out = _export(tmp_path, selection, ckpt, val_folder)
    assert rc == 0
    folder = cli.run_dir(out, 'exp')
    with open(os.path.join(folder, 'export.json')) as f:
        info = json.load(f)
    size = TABLE[selection]['input_size']
    assert info['preprocessing']['input_size'] == size and info['num_classes'] == 1000
    assert info['labels'] == 'imagenet' and len(info['class_names']) == 1000
    assert info['params'] == sum(p.numel() for p in ema.parameters())
    assert set(info['parity']['report']) == {'paddle', 'onnxruntime', 'openvino'}
    assert set(info['files']) == {'model.onnx', 'inference.json', 'inference.pdiparams'}
    assert info['parity']['report']['openvino']['real images']['images'] == 6
    assert info['parity']['max_rel'] <= RTOL
    x = np.random.RandomState(5).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = ema(torch.from_numpy(x)).numpy()
    assert relative(raw(torch.from_numpy(x)).detach().numpy(), expected) > 1e-2   # EMA and raw differ
    runtimes = (('paddle inference', _predictor(folder)), ('onnx runtime', _onnx(folder)),
                ('openvino', _openvino(folder)))
    for name, run in runtimes:
        assert relative(run(x), expected) <= RTOL, name
        assert relative(run(x[:1]), expected[:1]) <= RTOL, f'{name}, batch 1 (dynamic batch)'


def test_searched_network_from_arch_file_and_pdparams_equals_timm(tmp_path):
    """``NET.SELECTION -1`` with a retrain's ``arch.json`` (its trained size as ``resolution``) and a Paddle
    checkpoint carrying class names: the exported model equals timm's network, export.json names the classes."""
    import paddle
    from Paddle_Cream.models import ChildNet
    from torch2paddle import load_torch_weights
    arch, names = [[0], [3], [3], [3, 1], [3], [3], [0]], [f'kind{i}' for i in range(10)]
    ref = randomize(build_timm_cream(arch, num_classes=10), seed=6)
    save_official_checkpoint(ref, tmp_path / 'ref.pth.tar')
    net = ChildNet(arch, num_classes=10, input_size=48)
    net.set_state_dict(load_torch_weights(str(tmp_path / 'ref.pth.tar'), net, 'raw'))
    paddle.save({'state_dict': net.state_dict(), 'args': {'arch': arch, 'class_names': names}},
                str(tmp_path / 'model_best.pdparams'))
    (tmp_path / 'arch.json').write_text(json.dumps({'arch': arch, 'resolution': 48}))
    rc, out = _export(tmp_path, -1, tmp_path / 'model_best.pdparams', str(tmp_path / 'no_data'), 'NET.ARCH_FILE',
                      tmp_path / 'arch.json', 'DATASET.NUM_CLASSES', 10)
    assert rc == 0
    folder = cli.run_dir(out, 'exp')
    with open(os.path.join(folder, 'export.json')) as f:
        info = json.load(f)
    assert info['model'] == 'ChildNet' and info['arch'] == arch and info['preprocessing']['input_size'] == 48
    assert info['labels'] == 'checkpoint' and info['class_names'] == names
    x = np.random.RandomState(8).standard_normal((3, 3, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    assert relative(_predictor(folder)(x), expected) <= RTOL
    assert relative(_onnx(folder)(x), expected) <= RTOL


def test_format_paddle_writes_no_onnx_and_refuses_a_second_export(tmp_path, capsys):
    ckpt = tmp_path / '14.pth.tar'
    save_official_checkpoint(randomize(build_timm_cream(TABLE['14']['arch'])), ckpt)
    rc, out = _export(tmp_path, 14, ckpt, str(tmp_path / 'no_data'), 'EXPORT.FORMAT', 'paddle')
    assert rc == 0
    folder = cli.run_dir(out, 'exp')
    assert sorted(os.listdir(folder)) == ['.run.lock', 'export.json', 'export.log', 'export_config.yaml',
                                          'inference.json', 'inference.pdiparams']   # .run.lock: the folder's owner
    with open(os.path.join(folder, 'export.json')) as f:
        assert list(json.load(f)['parity']['report']['paddle']) == ['random batch']
    capsys.readouterr()
    rc, _ = _export(tmp_path, 14, ckpt, str(tmp_path / 'no_data'))
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith('error:') and 'already holds an export run' in err and '\n' not in err


LATENCY_ARCH = [[0], [3], [3], [3, 1], [3], [3], [0]]
QUICK_TIMING = ['LATENCY.WARMUP', 1, 'LATENCY.REPEATS', 2, 'LATENCY.ROUNDS', 2, 'LATENCY.PIN', False]


def _child_checkpoint(tmp_path, size=48):
    """A 10-class ChildNet of LATENCY_ARCH with random weights, and its arch.json at ``size`` px."""
    import paddle
    from Paddle_Cream.models import ChildNet
    paddle.seed(0)
    net = ChildNet(LATENCY_ARCH, num_classes=10, input_size=size)
    paddle.save({'state_dict': net.state_dict()}, str(tmp_path / 'child.pdparams'))
    (tmp_path / 'arch.json').write_text(json.dumps({'arch': LATENCY_ARCH, 'resolution': size}))
    return tmp_path / 'child.pdparams', tmp_path / 'arch.json'


@pytest.mark.parametrize('layers', ['the table\'s', 'other'])
def test_a_latency_table_gives_predicted_and_measured_latency(tmp_path, capsys, layers):
    """The network timed with the table's runtime at its resolution (32 px, the export's 48 px said); the
    synthetic table's numbers are far off (a 1 s stem), so the warning must appear; a table of other layers
    gives no prediction and says why."""
    from Paddle_Cream.search import PathLatency
    sta_num = [1, 1, 2, 1, 1] if layers == 'the table\'s' else [1, 1, 1, 1, 1]
    table_file = write_table(tmp_path / 'table.json', sta_num, resolution=32, stem_ms=1000.0)
    table = PathLatency.load(table_file)
    ckpt, arch = _child_checkpoint(tmp_path)
    capsys.readouterr()
    rc, out = _export(tmp_path, -1, ckpt, str(tmp_path / 'no_data'), 'NET.ARCH_FILE', arch, 'DATASET.NUM_CLASSES', 10,
                      'EXPORT.FORMAT', 'paddle', 'EXPORT.LATENCY_TABLE', table_file, *QUICK_TIMING)
    stdout = capsys.readouterr().out
    assert rc == 0
    folder = cli.run_dir(out, 'exp')
    with open(os.path.join(folder, 'export.json')) as f:
        latency = json.load(f)['latency']
    assert latency['table'] == os.path.abspath(table_file) and latency['digest'] == table.digest()
    assert latency['settings'] == table.settings()
    assert latency['statistic'] == 'p25_ms' and latency['measured_ms'] == latency['timing']['p25_ms']
    for key in ('median_ms', 'p10_ms', 'p25_ms', 'p90_ms'):
        assert np.isfinite(latency['timing'][key]) and latency['timing'][key] > 0, key
    assert "timed at the table's 32px, the input size its predictions are for (this export's is 48px)" in stdout
    with open(os.path.join(folder, 'export.log')) as f:
        warnings = [line for line in f if ' warning: ' in line]
    if layers == 'other':
        assert latency['predicted_ms'] is None and latency['error_percent'] is None
        assert '[1, 1, 2, 1, 1]' in latency['reason'] and not warnings
        return
    assert latency['predicted_ms'] == pytest.approx(table.predict(LATENCY_ARCH)) and latency['reason'] is None
    error = 100 * (latency['predicted_ms'] - latency['measured_ms']) / latency['measured_ms']
    assert latency['error_percent'] == pytest.approx(error) and error > 10
    assert len(warnings) == 1 and 'tools/main.py latency' in warnings[0]


def _hide_onnx(monkeypatch):
    real = run_export.importlib.util.find_spec
    monkeypatch.setattr(run_export.importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'paddle2onnx' else real(name, *a))


@pytest.mark.parametrize('case', ['no weights', 'weights missing', 'unknown format', 'onnx missing',
                                  'parity fails', 'latency table missing', 'latency table not JSON',
                                  'latency runtime missing'])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, case):
    ckpt = tmp_path / '14.pth.tar'
    save_official_checkpoint(randomize(build_timm_cream(TABLE['14']['arch'])), ckpt)
    extra, expected = [], {'no weights': 'export needs weights', 'weights missing': 'not found',
                           'unknown format': 'EXPORT.FORMAT', 'onnx missing': 'pip install paddle2onnx',
                           'parity fails': 'export parity check failed',
                           'latency table missing': "EXPORT.LATENCY_TABLE: latency table '/nonexistent.json' not found",
                           'latency table not JSON': 'EXPORT.LATENCY_TABLE: latency table',
                           'latency runtime missing': 'pip install cream_no_such_package'}[case]
    if case == 'no weights':
        ckpt = "''"
    elif case == 'weights missing':
        ckpt = tmp_path / 'nope.pth.tar'
    elif case == 'unknown format':
        extra = ['EXPORT.FORMAT', 'tflite']
    elif case == 'onnx missing':
        _hide_onnx(monkeypatch)
        extra = ['EXPORT.FORMAT', 'onnx']
    elif case == 'parity fails':
        monkeypatch.setattr(run_export, 'PARITY_RTOL', 0.0)
    elif case == 'latency table missing':
        extra = ['EXPORT.LATENCY_TABLE', '/nonexistent.json']
    elif case == 'latency table not JSON':
        extra = ['EXPORT.LATENCY_TABLE', ckpt]
    else:
        from pimm.inference import RUNTIME_PACKAGES
        monkeypatch.setitem(RUNTIME_PACKAGES, 'openvino', ('paddle2onnx', 'cream_no_such_package'))
        extra = ['EXPORT.LATENCY_TABLE', write_table(tmp_path / 'table.json', [1] * 5, runtime='openvino')]
    capsys.readouterr()
    rc, out = _export(tmp_path, 14, ckpt, str(tmp_path / 'no_data'), *extra)
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith('error:') and expected in err and '\n' not in err, err
    assert not out.exists() or not any(out.iterdir())


def doc_snippet(marker: str) -> str:
    """The ```python block after ``<!-- marker -->`` in docs/deploy.md."""
    with open(DEPLOY_DOC) as f:
        text = f.read()
    found = re.search(rf'<!-- {marker} -->\s*```python\n(.*?)```', text, re.S)
    assert found, f'docs/deploy.md has no snippet {marker}'
    return found.group(1)


def test_the_deployment_snippets_of_the_docs_give_timm_logits(tmp_path):
    """docs/deploy.md's preprocessing + Paddle Inference, ONNX Runtime and OpenVINO snippets, run as written (paths
    replaced), on a non-square image, against timm's own eval transform and network."""
    ref = randomize(build_timm_cream(TABLE['14']['arch']), seed=4)
    ckpt = tmp_path / '14.pth.tar'
    save_official_checkpoint(ref, ckpt)
    rc, out = _export(tmp_path, 14, ckpt, str(tmp_path / 'no_data'))
    assert rc == 0
    photo = tmp_path / 'photo.jpg'
    _image(np.random.RandomState(9), (181, 97)).save(photo, quality=92)
    transform = timm.data.create_transform(64, is_training=False, interpolation='bicubic', crop_pct=0.875)
    with torch.no_grad():
        expected = ref(transform(Image.open(photo).convert('RGB'))[None]).numpy()
    preprocess = doc_snippet('deploy-preprocess')
    assert "EXPORT_DIR = './output/" in preprocess
    preprocess = re.sub(r"EXPORT_DIR = '[^']*'", f'EXPORT_DIR = {cli.run_dir(out, "exp")!r}', preprocess)
    for marker in ('deploy-paddle-inference', 'deploy-onnxruntime', 'deploy-openvino'):
        code = doc_snippet(marker)
        assert 'my_photo.jpg' in code
        scope: dict = {}
        exec(preprocess + code.replace('my_photo.jpg', str(photo)), scope)
        assert relative(scope['logits'], expected) <= RTOL, marker
