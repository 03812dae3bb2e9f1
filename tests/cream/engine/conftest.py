"""The small digits folder the engine tests run the modes on."""
import pytest

from Paddle_Cream.data.demo_dataset import ensure_demo_dataset


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """12 images per digit: 10 train, 2 val per class."""
    root = str(tmp_path_factory.mktemp('digits') / 'digits')
    ensure_demo_dataset('digits', root, log=lambda _: None, per_class=12)
    return root
