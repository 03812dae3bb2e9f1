"""Building blocks shared by pimm networks (timm's ``timm.layers`` in Paddle)."""
from .activations import (HardSigmoid, HardSwish, Swish, create_act_layer, get_act_layer, hard_sigmoid,
                          hard_swish, list_act_layers, swish)
from .adaptive_avgmax_pool import SelectAdaptivePool2D, SelectAdaptivePool2d, adaptive_pool_feat_mult
from .conv2d_same import Conv2dSame
from .create_conv2d import create_conv2d
from .depthwise_conv import DepthwiseConv2d, depthwise_conv2d
from .drop import DropPath, drop_path
from .helpers import make_divisible, to_2tuple
from .padding import get_padding, get_padding_value, get_same_padding, is_static_pad, pad_same
from .norm import BatchNorm2d
