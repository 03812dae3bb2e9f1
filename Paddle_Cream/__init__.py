"""Paddle_Cream: Cream of the Crop and Single Path One-Shot on PaddlePaddle.

Importing the package registers the published child networks with pimm
(``pimm.create_model('cream_14')``).
"""
import warnings

# paddle warns on import when ccache (a compiler cache for custom ops) is absent; irrelevant here
warnings.filterwarnings('ignore', message='No ccache found')

from .models import CHOICES, ChildNet, create_cream, path_to_arch_def, published_models, validate_path
from .models.hypernet import HyperNet
from .search import search_for_layer

__version__ = '0.1.0'
