"""Official-style PyTorch checkpoints -> torch2paddle -> pimm model == timm reference.

Tolerance: float32 eval-mode logits, max |paddle - timm| <= 1e-4 * max |timm|.
The CLI runs in a subprocess where ``import torch`` fails, as a user without
PyTorch would run it.
"""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import torch

import Paddle_Cream  # noqa: F401
import pimm
from timm_reference import build_timm_cream, published_table, randomize, save_official_checkpoint

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REL_TOL = 1e-4
TABLE = published_table()
# spread the serialisation variants over the six models; cream_14 gets the full matrix below
VARIANTS = {'14': (False, False, True), '43': (True, True, True), '114': (False, True, False),
            '287': (True, False, True), '481': (False, False, False), '604': (True, True, False)}


@pytest.fixture(scope='module')
def torch_blocker(tmp_path_factory):
    """A directory that, first on PYTHONPATH, makes ``import torch`` fail."""
    d = tmp_path_factory.mktemp('no_torch')
    (d / 'torch').mkdir()
    (d / 'torch' / '__init__.py').write_text("raise ImportError('torch is blocked in this test')\n")
    return d


def run_cli(args, blocker):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), REPO_ROOT]))
    return subprocess.run([sys.executable, '-m', 'torch2paddle', *map(str, args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def logits_pair(name, ref, pdparams, input_size, seed=0):
    model = pimm.create_model(f'cream_{name}')
    state = paddle.load(str(pdparams))
    pimm.models.check_state_dict(model, state)
    model.set_state_dict(state)
    model.eval()
    x = np.random.RandomState(seed).randn(2, 3, input_size, input_size).astype('float32')
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
    return got, expected


@pytest.mark.parametrize('name', list(TABLE))
def test_published_model_parity_through_cli(name, tmp_path, torch_blocker):
    info = TABLE[name]
    legacy, prefix, with_ema = VARIANTS[name]
    ref = randomize(build_timm_cream(info['arch']), seed=int(name))
    ema = randomize(build_timm_cream(info['arch']), seed=int(name) + 1) if with_ema else None
    src, dst = tmp_path / f'{name}.pth.tar', tmp_path / f'cream_{name}.pdparams'
    save_official_checkpoint(ref, src, legacy=legacy, module_prefix=prefix, ema=ema)

    proc = run_cli([src, dst, '--model', f'cream_{name}'], torch_blocker)
    assert proc.returncode == 0, proc.stderr
    expected_source = 'taking state_dict_ema' if with_ema else 'taking state_dict (no state_dict_ema in the file)'
    assert expected_source in proc.stdout

    got, expected = logits_pair(name, ema if with_ema else ref, dst, info['input_size'])
    assert rel_err(got, expected) <= REL_TOL

    model = pimm.create_model(f'cream_{name}')
    macs, params = pimm.model_complexity(model, info['input_size'])
    assert params == sum(p.numel() for p in ref.parameters())
    assert round(params / 1e6, 3) == info['params_m']
    assert abs(macs / 1e6 - info['conv_linear_macs_m']) <= 0.01 * info['conv_linear_macs_m']


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
@pytest.mark.parametrize('prefix', [False, True], ids=['plain', 'module'])
@pytest.mark.parametrize('weights', ['ema', 'raw', 'no-ema'])
def test_cream_14_checkpoint_matrix(legacy, prefix, weights, tmp_path):
    from torch2paddle import convert_checkpoint
    info = TABLE['14']
    raw = randomize(build_timm_cream(info['arch']), seed=3)
    ema = None if weights == 'no-ema' else randomize(build_timm_cream(info['arch']), seed=4)
    src, dst = tmp_path / 'c.pth.tar', tmp_path / 'c.pdparams'
    save_official_checkpoint(raw, src, legacy=legacy, module_prefix=prefix, ema=ema, with_config=True)
    lines = []
    convert_checkpoint(str(src), str(dst), 'cream_14', weights='raw' if weights == 'raw' else 'ema',
                       log=lines.append)
    expected_ref = ema if weights == 'ema' else raw
    got, expected = logits_pair('14', expected_ref, dst, info['input_size'])
    assert rel_err(got, expected) <= REL_TOL
    if weights == 'no-ema':
        assert any('no state_dict_ema' in line for line in lines)
