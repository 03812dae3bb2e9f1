"""``python -m torch2paddle SRC DST --model NAME [--weights ema|raw]``, installed as ``cream-convert``."""
import argparse
import sys
from typing import List, Optional

from pimm.utils import CheckpointFileError

from .api import convert_checkpoint
from .convert import ConversionError
from .torch_reader import CheckpointError


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes as one ``torch2paddle: error:`` line (exit 2), like every other refusal; -h shows usage."""

    def error(self, message: str):
        self.exit(2, f'torch2paddle: error: {message} (see {self.prog} -h)\n')


def build_parser(prog: str = 'python -m torch2paddle') -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=prog, description=(
        'Convert an official PyTorch Cream checkpoint (.pth.tar, zip or legacy format) to a Paddle '
        '.pdparams state dict. PyTorch is not needed; the file is read with a restricted unpickler.'))
    parser.add_argument('src', help='PyTorch checkpoint (.pth.tar / .pth)')
    parser.add_argument('dst', help='Paddle state dict to write (.pdparams)')
    parser.add_argument('--model', required=True, help='pimm model name, e.g. cream_14 (see pimm.list_models())')
    parser.add_argument('--weights', choices=('ema', 'raw'), default='ema',
                        help="'ema' (default): state_dict_ema, falling back to state_dict; 'raw': state_dict")
    parser.add_argument('--num-classes', type=_positive_int, default=1000, help='classifier size of the checkpoint')
    parser.add_argument('--overwrite', action='store_true', help='replace DST when it exists (never SRC itself)')
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be a positive integer, got {text!r}')
    return value


def main(argv: Optional[List[str]] = None, prog: str = 'python -m torch2paddle') -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        convert_checkpoint(args.src, args.dst, args.model, args.weights, args.num_classes,
                           overwrite=args.overwrite)
    except (CheckpointError, ConversionError, CheckpointFileError, ValueError, OSError) as e:
        print(f'torch2paddle: error: {e}', file=sys.stderr)
        return 1
    return 0


def console_main() -> int:
    """The ``cream-convert`` command."""
    return main(prog='cream-convert')


if __name__ == '__main__':
    sys.exit(main())
