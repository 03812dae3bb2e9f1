"""ChildNet against timm's MobileNetV3 built per docs/reference.md §2, for random paths; timm-style API."""
import re

import numpy as np
import paddle
import pytest
import torch

import Paddle_Cream
import pimm
from Paddle_Cream.models import ChildNet, path_to_arch_def, validate_path
from timm_reference import build_timm_cream, published_table, randomize, timm_arch_def
from torch2paddle import convert_state_dict

TABLE = published_table()


def random_path(seed, max_layers=4):
    rng = np.random.RandomState(seed)
    return [[0]] + [[int(c) for c in rng.randint(0, 6, rng.randint(1, max_layers + 1))] for _ in range(5)] + [[0]]


@pytest.mark.parametrize('seed', range(4))
def test_child_net_matches_timm_for_random_paths(seed):
    path = random_path(seed)
    ref = randomize(build_timm_cream(path, num_classes=10), seed=seed)
    model = ChildNet(path, num_classes=10)
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    model.set_state_dict(convert_state_dict(state, model))
    model.eval()
    x = np.random.RandomState(seed).randn(2, 3, 40, 40).astype('float32')
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = model(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_arch_def_follows_spec():
    path = TABLE['481']['arch']
    assert path_to_arch_def(path) == timm_arch_def(path)


@pytest.mark.parametrize('name', list(TABLE))
def test_published_models_registered_with_input_size(name):
    assert f'cream_{name}' in pimm.list_models('cream_*')
    model = pimm.create_model(f'cream_{name}', num_classes=7)
    cfg = model.default_cfg
    assert cfg['input_size'] == (3, TABLE[name]['input_size'], TABLE[name]['input_size'])
    assert cfg['mean'] == (0.485, 0.456, 0.406) and cfg['std'] == (0.229, 0.224, 0.225)
    assert cfg['crop_pct'] == 0.875 and cfg['interpolation'] == 'bicubic'
    assert cfg['paper_top1'] == TABLE[name]['paper_top1']
    assert model.path == TABLE[name]['arch']


def test_timm_api():
    model = pimm.create_model('cream_14', num_classes=5, drop_rate=0.2)
    model.eval()
    x = paddle.randn([2, 3, 64, 64])
    feats = model.forward_features(x)
    assert feats.shape == [2, 320, 2, 2]
    assert model.forward_head(feats, pre_logits=True).shape == [2, 1280]
    assert model(x).shape == [2, 5]
    assert model.get_classifier().weight.shape == [1280, 5]
    model.reset_classifier(3)
    assert model(x).shape == [2, 3]
    model.reset_classifier(0)
    assert model(x).shape == [2, 1280]


def test_dropout_only_in_training():
    model = pimm.create_model('cream_14', num_classes=4, drop_rate=0.5)
    x = paddle.randn([2, 3, 32, 32])
    model.eval()
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    model.train()
    paddle.seed(0)
    a = model(x).numpy()
    paddle.seed(1)
    assert not np.allclose(a, model(x).numpy())


@pytest.mark.parametrize('bad, message', [
    ([[0], [3], [3], [3], [3], [3]], 'list of 7 lists'),
    ([[0], [3], [3], [3], [3], [6], [0]], 'choice 6'),
    ([[0], [3], [], [3], [3], [3], [0]], 'no layers'),
    ([[1], [3], [3], [3], [3], [3], [0]], 'must be [0]'),
    ([[0], [3], ['a'], [3], [3], [3], [0]], 'integers'),
    ('[[0]]', 'list of 7 lists'),
])
def test_invalid_paths_rejected(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ChildNet(bad)


def test_max_layers_limit():
    with pytest.raises(ValueError, match='allows 4'):
        validate_path([[0], [3] * 5, [3], [3], [3], [3], [0]], max_layers=4)


def test_unknown_model_names_choices():
    with pytest.raises(ValueError, match="did you mean 'cream_14'"):
        pimm.create_model('cream_15')
