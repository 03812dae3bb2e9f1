"""pimm.models: networks, blocks, registry and checkpoint helpers."""
from ._factory import create_model
from ._helpers import (assign_state_dict, check_state_dict, clean_state_dict, load_checkpoint, load_state_dict,
                       restore_checkpoint, resume_checkpoint, select_state_dict)
from ._registry import is_model, list_models, model_entrypoint, register_model
from .efficientnet_blocks import ConvBnAct, DepthwiseSeparableConv, InvertedResidual, SqueezeExcite
from .efficientnet_builder import (EfficientNetBuilder, decode_arch_def, decode_block_str,
                                   efficientnet_init_weights, init_weight_goog)
from .layers import *  # noqa: F401,F403  timm exposes layers through models too
