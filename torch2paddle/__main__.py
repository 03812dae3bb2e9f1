"""``python -m torch2paddle SRC DST --model NAME [--weights ema|raw]``, installed as ``cream-convert``."""
import argparse
import sys
from typing import List, Optional

from pimm.utils import CheckpointFileError

from .api import convert_checkpoint
from .convert import ConversionError
from .torch_reader import CheckpointError


def build_parser(prog: str = 'python -m torch2paddle') -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=(
        'Convert an official PyTorch Cream checkpoint (.pth.tar, zip or legacy format) to a Paddle '
        '.pdparams state dict. PyTorch is not needed; the file is read with a restricted unpickler.'))
    parser.add_argument('src', help='PyTorch checkpoint (.pth.tar / .pth)')
    parser.add_argument('dst', help='Paddle state dict to write (.pdparams)')
    parser.add_argument('--model', required=True, help='pimm model name, e.g. cream_14 (see pimm.list_models())')
    parser.add_argument('--weights', choices=('ema', 'raw'), default='ema',
                        help="'ema' (default): state_dict_ema, falling back to state_dict; 'raw': state_dict")
    parser.add_argument('--num-classes', type=int, default=1000, help='classifier size of the checkpoint')
    return parser


def main(argv: Optional[List[str]] = None, prog: str = 'python -m torch2paddle') -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        convert_checkpoint(args.src, args.dst, args.model, args.weights, args.num_classes)
    except (CheckpointError, ConversionError, CheckpointFileError, ValueError, OSError) as e:
        print(f'torch2paddle: error: {e}', file=sys.stderr)
        return 1
    return 0


def console_main() -> int:
    """The ``cream-convert`` command."""
    return main(prog='cream-convert')


if __name__ == '__main__':
    sys.exit(main())
