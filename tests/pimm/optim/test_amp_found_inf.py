"""pimm optimizers honour ``found_inf`` as ``paddle.amp.GradScaler.step`` sets it (the scaler itself needs a GPU)."""
import numpy as np
import paddle
import pytest

from pimm.optim import create_optimizer


def _step(opt_name: str, found_inf):
    lin = paddle.nn.Linear(3, 2)
    opt = create_optimizer(lin, opt_name, lr=0.1, eps=1e-3)
    before = lin.weight.numpy().copy()
    lin(paddle.ones([1, 3])).sum().backward()
    if found_inf is not None:
        opt._set_auxiliary_var('found_inf', paddle.to_tensor(found_inf))
    opt.step()
    return before, lin.weight.numpy(), opt._get_auxiliary_var('found_inf')


@pytest.mark.parametrize('opt_name', ['rmsproptf', 'sgd', 'adamw'])
def test_overflowed_step_is_skipped_and_reported(opt_name):
    before, after, reported = _step(opt_name, True)
    assert np.array_equal(before, after) and reported is True


@pytest.mark.parametrize('found_inf', [False, None])
def test_finite_step_is_applied(found_inf):
    before, after, reported = _step('rmsproptf', found_inf)
    assert not np.array_equal(before, after)
    assert reported is (None if found_inf is None else False)
