"""ChildNet: one architecture of the Cream search space as a stand-alone network."""
from functools import partial
from typing import Any, Dict, Optional, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from pimm.data import DEFAULT_CROP_PCT, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from pimm.models import EfficientNetBuilder, SqueezeExcite, decode_arch_def, efficientnet_init_weights
from pimm.models.layers import BatchNorm2d, SelectAdaptivePool2d, create_act_layer, create_conv2d, make_divisible

from .search_space import path_to_arch_def, validate_path

__all__ = ['ChildNet', 'cream_se_layer', 'default_cfg_for']

# Cream's SE: width from the expanded channels, ReLU inside, hard-sigmoid relu6(x+3)/6 gate
cream_se_layer = partial(SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer='relu',
                         rd_round_fn=make_divisible)


def default_cfg_for(input_size: int, num_classes: int = 1000, **extra) -> Dict[str, Any]:
    """timm-style default config: input size, crop, interpolation, mean/std, classifier name."""
    cfg = dict(input_size=(3, input_size, input_size), crop_pct=DEFAULT_CROP_PCT, interpolation='bicubic',
               mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, num_classes=num_classes,
               first_conv='conv_stem', classifier='classifier')
    cfg.update(extra)
    return cfg


class ChildNet(nn.Layer):
    """Stem, the path's blocks, 1x1 conv to 320, then the head (pool, 1x1 conv with bias, act, linear).

    Parameter names follow the official checkpoints (``conv_stem``, ``bn1``,
    ``blocks.{stage}.{layer}.*``, ``conv_head``, ``classifier``), so converted
    weights load by name.
    """

    def __init__(self, path: Sequence[Sequence[int]], num_classes: int = 1000, in_chans: int = 3,
                 stem_size: int = 16, num_features: int = 1280, head_bias: bool = True, pad_type: str = '',
                 act_layer: str = 'swish', drop_rate: float = 0., drop_path_rate: float = 0.,
                 global_pool: str = 'avg', input_size: int = 224, default_cfg: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.path = validate_path(path)
        self.num_classes = num_classes
        self.num_features = num_features
        self.drop_rate = drop_rate
        self.default_cfg = default_cfg or default_cfg_for(input_size, num_classes)
        self.pretrained_cfg = self.default_cfg

        self.conv_stem = create_conv2d(in_chans, stem_size, 3, stride=2, padding=pad_type)
        self.bn1 = BatchNorm2d(stem_size)
        self.act1 = create_act_layer(act_layer)
        builder = EfficientNetBuilder(pad_type=pad_type, act_layer=act_layer, se_layer=cream_se_layer,
                                      se_from_exp=True, drop_path_rate=drop_path_rate)
        self.blocks = nn.Sequential(*builder(stem_size, decode_arch_def(path_to_arch_def(self.path))))
        self.head_in_chs = builder.in_chs
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        self.conv_head = create_conv2d(self.head_in_chs * self.global_pool.feat_mult(), num_features, 1,
                                       padding=pad_type, bias=head_bias)
        self.act2 = create_act_layer(act_layer)
        self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        self.classifier = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()
        efficientnet_init_weights(self)

    def get_classifier(self) -> nn.Layer:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str = 'avg') -> None:
        """New (freshly initialised) classifier for ``num_classes``; 0 removes it."""
        self.num_classes = num_classes
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            efficientnet_init_weights(self.classifier)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        return self.blocks(x)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = self.global_pool(x)
        x = self.flatten(self.act2(self.conv_head(x)))
        if pre_logits:
            return x
        if self.drop_rate > 0.:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.classifier(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.forward_head(self.forward_features(x))
