"""Shared fixtures for the pimm tests.

timm (PyTorch) is the oracle: a timm module is built, given random weights and
non-trivial BatchNorm statistics, copied onto the pimm twin with
``torch2paddle.convert.convert_state_dict`` and both are run on the same input.
"""
import types

import numpy as np
import paddle
import pytest
import torch

from torch2paddle.convert import convert_state_dict


def _torch_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _copy(timm_module: torch.nn.Module, paddle_layer: paddle.nn.Layer) -> dict:
    """timm weights -> pimm layer (convert_state_dict checks every key and shape)."""
    state = convert_state_dict(_torch_state(timm_module), paddle_layer)
    paddle_layer.set_state_dict(state)
    return state


def _randomize_bn(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BN affine params and running stats (mean in [-0.5, 0.5), var in [0.5, 1.5))."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return module


def _forward(timm_module: torch.nn.Module, paddle_layer: paddle.nn.Layer, x: np.ndarray, train: bool = False):
    """Outputs (timm, pimm) as numpy arrays for the same float32 input."""
    timm_module.train(train)
    paddle_layer.train() if train else paddle_layer.eval()
    with torch.no_grad():
        y_t = timm_module(torch.from_numpy(x)).numpy()
    with paddle.no_grad():
        y_p = paddle_layer(paddle.to_tensor(x)).numpy()
    return y_t, y_p


def _input(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def parity():
    """Helpers for timm-vs-pimm comparisons: copy, randomize_bn, forward, torch_state, input."""
    return types.SimpleNamespace(copy=_copy, randomize_bn=_randomize_bn, forward=_forward,
                                 torch_state=_torch_state, input=_input)


@pytest.fixture
def seeded():
    """Seed numpy, torch and paddle (used by every parity module through ``pytestmark``)."""
    np.random.seed(0)
    torch.manual_seed(0)
    paddle.seed(0)
    yield
