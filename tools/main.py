#!/usr/bin/env python
"""Paddle_Cream command line from a checkout: ``python tools/main.py MODE CONFIG [KEY VALUE ...]``.

The same as the installed ``cream`` command (the modes and keys: ``--help``, Paddle_Cream/cli.py).
NUM_GPU > 1 runs the mode under paddle.distributed.launch, which starts this file again.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import warnings  # noqa: E402

warnings.filterwarnings('ignore', message='No ccache found')
# Paddle's C++ warnings (glog level 1) would bury the one-line errors users should see
os.environ.setdefault('GLOG_minloglevel', '2')


def main(argv=None) -> int:
    from Paddle_Cream.cli import main as cli_main
    return cli_main(argv, prog='python tools/main.py', script=os.path.abspath(__file__))


if __name__ == '__main__':
    sys.exit(main())
