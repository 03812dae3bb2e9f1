"""Shared test set-up: the repo root and tests/helpers importable, quiet Paddle, the digits folder."""
import os
import sys
import warnings

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
for p in (REPO_ROOT, os.path.join(TESTS_DIR, 'helpers')):
    if p not in sys.path:
        sys.path.insert(0, p)

warnings.filterwarnings('ignore', message='No ccache found')


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """A small digits folder the modes run on: 12 images per digit (10 train, 2 val per class)."""
    from Paddle_Cream.data.demo_dataset import ensure_demo_dataset
    root = str(tmp_path_factory.mktemp('digits') / 'digits')
    ensure_demo_dataset('digits', root, log=lambda _: None, per_class=12)
    return root
