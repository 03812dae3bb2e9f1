"""Entry file of the ``cream`` command (``cream MODE CONFIG [KEY VALUE ...]``, see Paddle_Cream.cli).

A module of its own, outside the packages: importing ``Paddle_Cream`` imports Paddle, which reads its
C++ log level once, on import; so it is set here first (as ``tools/main.py`` does). A multi-process run
(NUM_GPU > 1) starts this file again under paddle.distributed.launch.
"""
import os
import sys
import warnings

warnings.filterwarnings('ignore', message='No ccache found')
# Paddle's C++ warnings (glog level 1) would bury the one-line errors users should see
os.environ.setdefault('GLOG_minloglevel', '2')


def main() -> int:
    from Paddle_Cream.cli import main as cli_main
    return cli_main(sys.argv[1:], prog='cream', script=os.path.abspath(__file__))


if __name__ == '__main__':
    sys.exit(main())
