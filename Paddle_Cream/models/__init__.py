"""Cream networks: the search space, child networks and the published models."""
from .child_net import ChildNet, cream_se_layer, default_cfg_for
from .cream_models import CREAM_MODEL_NAMES, create_cream
from .search_space import CHOICES, STAGE_OUT_CHS, STAGE_STRIDES, path_to_arch_def, published_models, validate_path
