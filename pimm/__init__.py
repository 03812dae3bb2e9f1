"""pimm: the parts of timm that Cream needs, in PaddlePaddle."""
import warnings

# paddle warns on import when ccache (a compiler cache for custom ops) is absent; irrelevant here
warnings.filterwarnings('ignore', message='No ccache found')
# paddle's BatchNorm warns on every training forward that it tracks running statistics (it always did)
warnings.filterwarnings('ignore', message='When training, we now always track global mean and variance')

from .models import create_model, is_model, list_models, load_checkpoint, register_model, resume_checkpoint
from .utils import model_complexity

__version__ = '0.1.0'
