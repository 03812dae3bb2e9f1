"""Twin PyTorch / Paddle models with equal weights, and gradients fed to both from numpy."""
import numpy as np
import paddle
import pytest
import torch

TOL = 1e-6


class Twins:
    """Conv + BN + Linear in both frameworks; ``pairs`` are (name, torch param, paddle param)."""

    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.torch = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                         torch.nn.Linear(8, 5))
        self.paddle = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Flatten(),
                                           paddle.nn.Linear(8, 5))
        trainable = [(n, p) for n, p in self.paddle.named_parameters() if not p.stop_gradient]
        self.pairs = [(n, tp, pp) for (n, tp), (pn, pp) in zip(self.torch.named_parameters(), trainable)]
        assert [n for n, _, _ in self.pairs] == [n for n, _ in trainable]
        for name, tp, pp in self.pairs:
            pp.set_value(self._to_paddle(name, tp.detach().numpy()))

    @staticmethod
    def _to_paddle(name: str, value: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(value.T) if name == '3.weight' else value

    def set_grads(self, step: int, names=None) -> None:
        """Gradients drawn for ``step``: exact ``.grad`` on torch, ``backward`` of sum(p * g) on Paddle."""
        rng = np.random.default_rng(1000 + step)
        loss = 0.
        for name, tp, pp in self.pairs:
            grad = rng.standard_normal(tuple(tp.shape)).astype(np.float32)
            if names is not None and name not in names:
                continue
            tp.grad = torch.from_numpy(grad.copy())
            loss = loss + (pp * paddle.to_tensor(self._to_paddle(name, grad))).sum()
        loss.backward()

    def max_diff(self) -> float:
        """Largest |paddle - torch| over all parameters; asserts they agree to 1e-6 (rtol and atol)."""
        worst = 0.
        for name, tp, pp in self.pairs:
            expected = self._to_paddle(name, tp.detach().numpy())
            np.testing.assert_allclose(pp.numpy(), expected, rtol=TOL, atol=TOL, err_msg=name)
            worst = max(worst, float(np.abs(pp.numpy() - expected).max()))
        return worst


@pytest.fixture
def twins():
    return Twins()


@pytest.fixture
def make_twins():
    return Twins
