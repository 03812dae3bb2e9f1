"""Convert official PyTorch Cream checkpoints (.pth.tar) to Paddle (.pdparams) without torch.

    python -m torch2paddle 14.pth.tar cream_14.pdparams --model cream_14
"""
import warnings

# paddle warns on import when ccache (a compiler cache for custom ops) is absent; irrelevant here
warnings.filterwarnings('ignore', message='No ccache found')

from .api import convert_checkpoint, load_torch_weights
from .convert import ConversionError, convert_state_dict, select_weights
from .torch_reader import CheckpointError, load_torch_checkpoint
