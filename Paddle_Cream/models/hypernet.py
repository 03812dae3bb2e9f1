"""The Cream hypernetwork (supernet): every searched layer holds all six choice blocks."""
from typing import Dict, List, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from pimm.models import EfficientNetBuilder, decode_block_str, efficientnet_init_weights
from pimm.models.layers import BatchNorm2d, SelectAdaptivePool2d, create_act_layer, create_conv2d

from .child_net import ChildNet, cream_se_layer, default_cfg_for
from .search_space import (CHOICES, LAST_BLOCK, NUM_SEARCHED_STAGES, STAGE_OUT_CHS, STAGE_STRIDES, STEM_BLOCK, Path,
                           validate_path)

__all__ = ['HyperNet']


def _choice_block_args(stage: int, layer: int, choice: int) -> dict:
    kernel, exp = CHOICES[choice]
    stride = STAGE_STRIDES[stage] if layer == 0 else 1
    return decode_block_str(f'ir_r1_k{kernel}_s{stride}_e{exp}_c{STAGE_OUT_CHS[stage]}_se0.25')


class HyperNet(nn.Layer):
    """Stem, fixed stage 0, ``sta_num[i]`` searched layers of 6 choice blocks per stage, fixed
    stage 6 and the head; ``forward(x, path)`` runs one path.

    Keys: ``blocks.{stage}.{layer}.{choice}.*`` for searched layers, the ChildNet
    layout elsewhere, so :meth:`extract_child` is a rename.
    """

    def __init__(self, sta_num: Sequence[int], num_classes: int = 1000, in_chans: int = 3, stem_size: int = 16,
                 num_features: int = 1280, pad_type: str = '', act_layer: str = 'swish', drop_rate: float = 0.,
                 drop_path_rate: float = 0., global_pool: str = 'avg', resolution: int = 224):
        super().__init__()
        if len(sta_num) != NUM_SEARCHED_STAGES or not all(isinstance(n, int) and 1 <= n for n in sta_num):
            raise ValueError(f'sta_num must be {NUM_SEARCHED_STAGES} positive layer counts, got {sta_num!r}')
        self.sta_num = list(sta_num)
        self.num_classes, self.num_features, self.drop_rate = num_classes, num_features, drop_rate
        self.resolution = resolution
        self.child_kwargs = dict(num_classes=num_classes, in_chans=in_chans, stem_size=stem_size,
                                 num_features=num_features, pad_type=pad_type, act_layer=act_layer,
                                 drop_rate=drop_rate, global_pool=global_pool, input_size=resolution)
        self.default_cfg = default_cfg_for(resolution, num_classes)

        self.conv_stem = create_conv2d(in_chans, stem_size, 3, stride=2, padding=pad_type)
        self.bn1 = BatchNorm2d(stem_size)
        self.act1 = create_act_layer(act_layer)
        total = 2 + sum(self.sta_num)
        builder = EfficientNetBuilder(pad_type=pad_type, act_layer=act_layer, se_layer=cream_se_layer)
        stages: List[nn.Layer] = [nn.Sequential(builder.make_block(decode_block_str(STEM_BLOCK), stem_size))]
        in_chs, depth = 16, 1
        for s, layers in enumerate(self.sta_num):
            stage = nn.LayerList()
            for l in range(layers):
                rate = drop_path_rate * depth / total
                stage.append(nn.LayerList([builder.make_block(_choice_block_args(s, l, c), in_chs, rate)
                                           for c in range(len(CHOICES))]))
                in_chs, depth = STAGE_OUT_CHS[s], depth + 1
            stages.append(stage)
        last = decode_block_str(LAST_BLOCK)
        stages.append(nn.Sequential(builder.make_block(last, in_chs)))
        self.blocks = nn.LayerList(stages)
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        self.conv_head = create_conv2d(last['out_chs'] * self.global_pool.feat_mult(), num_features, 1,
                                       padding=pad_type, bias=True)
        self.act2 = create_act_layer(act_layer)
        self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        self.classifier = nn.Linear(num_features, num_classes)
        efficientnet_init_weights(self)

    def check_path(self, path: Sequence[Sequence[int]]) -> Path:
        """``path`` validated against this hypernetwork's depths (``ValueError`` otherwise)."""
        path = validate_path(path)
        lengths = [len(stage) for stage in path[1:-1]]
        if lengths != self.sta_num:
            raise ValueError(f'path has {lengths} layers per searched stage, this hypernetwork has {self.sta_num}')
        return path

    def path_blocks(self, path: Path) -> List[nn.Layer]:
        """The blocks ``path`` runs, in order (fixed stages included)."""
        blocks = [self.blocks[0]]
        for s, stage in enumerate(path[1:-1]):
            blocks.extend(self.blocks[s + 1][l][c] for l, c in enumerate(stage))
        blocks.append(self.blocks[-1])
        return blocks

    def path_parameters(self, path: Sequence[Sequence[int]]) -> List[paddle.Tensor]:
        """Trainable parameters ``path`` uses (what a sampled step may update)."""
        path = self.check_path(path)
        layers = [self.conv_stem, self.bn1, *self.path_blocks(path), self.conv_head, self.classifier]
        return [p for layer in layers for p in layer.parameters() if not p.stop_gradient]

    def units(self) -> List[List[nn.Layer]]:
        """The parts a path takes or leaves whole, each a list of layers: the stem, the fixed first stage,
        every choice block of every searched layer (stage by stage, layer by layer, choice by choice), the
        fixed last stage, the head. Every parameter and statistic is in exactly one unit."""
        units = [[self.conv_stem, self.bn1], [self.blocks[0]]]
        for stage in self.blocks[1:-1]:
            units.extend([choice] for layer in stage for choice in layer)
        return units + [[self.blocks[-1]], [self.conv_head, self.classifier]]

    def path_units(self, path: Sequence[Sequence[int]]) -> List[int]:
        """Indices into :meth:`units` of the parts ``path`` runs, in order."""
        path = self.check_path(path)
        out, first = [0, 1], 2
        for stage in path[1:-1]:
            out.extend(first + len(CHOICES) * l + c for l, c in enumerate(stage))
            first += len(CHOICES) * len(stage)
        return out + [first, first + 1]

    def forward_features(self, x: paddle.Tensor, path: Path) -> paddle.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        for block in self.path_blocks(path):
            x = block(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = self.flatten(self.act2(self.conv_head(self.global_pool(x))))
        if pre_logits:
            return x
        if self.drop_rate > 0.:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.classifier(x)

    def forward(self, x: paddle.Tensor, path: Sequence[Sequence[int]]) -> paddle.Tensor:
        return self.forward_head(self.forward_features(x, self.check_path(path)))

    def child_state_dict(self, path: Sequence[Sequence[int]]) -> Dict[str, paddle.Tensor]:
        """The weights of ``path`` under ChildNet's names (``blocks.s.l.c.x`` -> ``blocks.s.l.x``)."""
        path = self.check_path(path)
        out = {}
        for key, value in self.state_dict().items():
            parts = key.split('.')
            if parts[0] == 'blocks' and 1 <= int(parts[1]) <= NUM_SEARCHED_STAGES:
                s, l, c = int(parts[1]), int(parts[2]), int(parts[3])
                if path[s][l] != c:
                    continue
                key = '.'.join(parts[:3] + parts[4:])
            out[key] = value
        return out

    def extract_child(self, path: Sequence[Sequence[int]]) -> ChildNet:
        """A stand-alone ChildNet for ``path`` carrying the inherited weights."""
        child = ChildNet(self.check_path(path), **self.child_kwargs)
        state = {k: v.clone() for k, v in self.child_state_dict(path).items()}
        from pimm.models import check_state_dict
        check_state_dict(child, state)
        child.set_state_dict(state)
        return child
