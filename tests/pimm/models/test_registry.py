"""Model registry and factory: register_model, list_models, is_model, model_entrypoint, create_model.

A throwaway model is registered for the duration of each test (Paddle_Cream is not imported).
"""
import fnmatch

import numpy as np
import paddle
import pytest

import pimm
from pimm.models import _registry, create_model, is_model, list_models, model_entrypoint, register_model
from pimm.utils import save_paddle_file

pytestmark = pytest.mark.usefixtures('seeded')

TEST_NAMES = ['pimmtest_tiny_a', 'pimmtest_tiny_b', 'pimmtest_other_net']


class TinyNet(paddle.nn.Layer):
    def __init__(self, num_classes=1000, drop_rate=0., width=4):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, width, 3, padding=1)
        self.fc = paddle.nn.Linear(width, num_classes)
        self.num_classes = num_classes
        self.drop_rate = drop_rate

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def _make_entry(name):
    def entry(pretrained=False, **kwargs):
        return TinyNet(**kwargs)
    entry.__name__ = name
    return entry


@pytest.fixture
def registered():
    """Register the throwaway models; remove them (and only them) afterwards."""
    before = dict(_registry._ENTRYPOINTS)
    fns = {name: register_model(_make_entry(name)) for name in TEST_NAMES}
    yield fns
    for name in TEST_NAMES:
        _registry._ENTRYPOINTS.pop(name, None)
    assert _registry._ENTRYPOINTS == before


def test_register_returns_fn_and_is_listed(registered):
    for name, fn in registered.items():
        assert is_model(name)
        assert model_entrypoint(name) is fn
        assert name in list_models()
    assert list_models() == sorted(list_models())
    assert pimm.list_models is list_models and pimm.register_model is register_model


def test_register_same_fn_twice_is_idempotent_but_other_fn_same_name_refused(registered):
    fn = registered['pimmtest_tiny_a']
    assert register_model(fn) is fn
    with pytest.raises(ValueError, match="'pimmtest_tiny_a' is already registered"):
        register_model(_make_entry('pimmtest_tiny_a'))
    assert model_entrypoint('pimmtest_tiny_a') is fn


@pytest.mark.parametrize('pattern', ['pimmtest_tiny_*', 'pimmtest_*', '*_net', 'pimmtest_tiny_?', 'nomatch*', '',
                                     'pimmtest_tiny_[ab]'])
def test_list_models_wildcard_filter(registered, pattern):
    result = list_models(pattern)
    everything = list_models()
    expected = fnmatch.filter(everything, pattern) if pattern else everything
    assert result == sorted(expected)
    ours = [n for n in result if n in TEST_NAMES]
    assert ours == sorted(n for n in TEST_NAMES if not pattern or fnmatch.fnmatch(n, pattern))


def test_is_model_false_for_unknown(registered):
    assert not is_model('pimmtest_tiny_c')
    assert not is_model('')


def test_model_entrypoint_unknown_names_valid_choices_and_close_match(registered):
    with pytest.raises(ValueError) as info:
        model_entrypoint('pimmtest_tiny_aa')
    msg = str(info.value)
    assert "unknown model 'pimmtest_tiny_aa'" in msg
    assert "did you mean 'pimmtest_tiny_a'" in msg
    for name in TEST_NAMES:
        assert name in msg


def test_model_entrypoint_unknown_without_close_match(registered):
    with pytest.raises(ValueError) as info:
        model_entrypoint('zzzzzzzzzzzzzz')
    assert 'did you mean' not in str(info.value)
    assert 'valid:' in str(info.value)


def test_create_model_builds_and_passes_kwargs(registered):
    model = create_model('pimmtest_tiny_b', num_classes=7, drop_rate=0.25, width=6)
    assert isinstance(model, TinyNet)
    assert model.num_classes == 7 and model.drop_rate == 0.25
    assert tuple(model.fc.weight.shape) == (6, 7)
    assert tuple(model(paddle.zeros([2, 3, 9, 7])).shape) == (2, 7)


def test_create_model_pretrained_refused(registered):
    with pytest.raises(ValueError) as info:
        create_model('pimmtest_tiny_a', pretrained=True)
    msg = str(info.value)
    assert 'pretrained=True' in msg and 'torch2paddle' in msg and 'checkpoint_path' in msg


def test_create_model_unknown_name(registered):
    with pytest.raises(ValueError, match="unknown model 'pimmtest_tiny_x'"):
        create_model('pimmtest_tiny_x')


def test_create_model_loads_checkpoint_path(registered, tmp_path):
    src = create_model('pimmtest_tiny_a', num_classes=5)
    path = tmp_path / 'tiny.pdparams'
    save_paddle_file({'state_dict': src.state_dict(), 'epoch': 1}, path)
    paddle.seed(123)
    dst = create_model('pimmtest_tiny_a', num_classes=5, checkpoint_path=str(path))
    for (k, a), (k2, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_create_model_checkpoint_path_must_fit(registered, tmp_path):
    src = create_model('pimmtest_tiny_a', num_classes=5)
    path = tmp_path / 'tiny.pdparams'
    save_paddle_file(src.state_dict(), path)
    with pytest.raises(KeyError, match='shape mismatch'):
        create_model('pimmtest_tiny_a', num_classes=6, checkpoint_path=str(path))
