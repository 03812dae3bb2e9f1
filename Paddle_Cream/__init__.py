"""Paddle_Cream: Cream of the Crop and Single Path One-Shot on PaddlePaddle.

Importing the package registers the published child networks with pimm
(``pimm.create_model('cream_14')``).
"""
from .models import CHOICES, ChildNet, create_cream, path_to_arch_def, published_models, validate_path

__version__ = '0.1.0'
