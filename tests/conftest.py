"""Shared test set-up: the repo root and tests/helpers importable, quiet Paddle."""
import os
import sys
import warnings

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
for p in (REPO_ROOT, os.path.join(TESTS_DIR, 'helpers')):
    if p not in sys.path:
        sys.path.insert(0, p)

warnings.filterwarnings('ignore', message='No ccache found')
