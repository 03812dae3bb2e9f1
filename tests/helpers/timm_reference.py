"""The independent oracle: Cream networks built by timm (docs/reference.md §2), and official-style checkpoints."""
import json
import os
import sys
from collections import OrderedDict
from functools import partial

import torch
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models._efficientnet_builder import decode_arch_def, round_channels
from timm.models.mobilenetv3 import MobileNetV3

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the test's own copy of the published facts comes from shared/ when present, else the repo's copy
_TABLE = os.path.join(REPO_ROOT, 'Paddle_Cream', 'data', 'cream_published_models.json')
CHOICES = [(3, 4), (3, 6), (5, 4), (5, 6), (7, 4), (7, 6)]
OUT_CHS = [24, 40, 80, 96, 192]
STRIDES = [2, 2, 2, 1, 2]


def published_table():
    with open(_TABLE) as f:
        return json.load(f)['models']


def timm_arch_def(path):
    arch = [['ds_r1_k3_s1_e1_c16_se0.25']]
    for i, stage in enumerate(path[1:6]):
        arch.append([f'ir_r1_k{CHOICES[c][0]}_s{STRIDES[i] if j == 0 else 1}_e{CHOICES[c][1]}_c{OUT_CHS[i]}_se0.25'
                     for j, c in enumerate(stage)])
    arch.append(['cn_r1_k1_s1_c320_se0.25'])
    return arch


def build_timm_cream(path, num_classes=1000):
    """timm's MobileNetV3 configured as the Cream child network for ``path``."""
    se = partial(SqueezeExcite, gate_layer='hard_sigmoid', force_act_layer=torch.nn.ReLU,
                 rd_round_fn=round_channels)
    return MobileNetV3(decode_arch_def(timm_arch_def(path)), num_classes=num_classes, stem_size=16,
                       num_features=1280, head_bias=True, act_layer=torch.nn.SiLU, se_layer=se, se_from_exp=True)


def randomize(model, seed=0, gain=1.0):
    """Random weights and non-trivial BatchNorm statistics, deterministic in ``seed``.

    ``gain`` 1 keeps activations of order one through the deepest model (conv weights
    N(0, 1/fan_in), BN scale U(0.5, 1)); 2 is He init with BN scale U(1, 2), which makes
    a random network's features differ more between images."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.copy_((torch.rand(mod.weight.shape, generator=g) * 0.5 + 0.5) * gain)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
                mod.num_batches_tracked.fill_(1234)
            elif isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (gain / fan_in) ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
    return model.eval()


def _private_module():
    """A module only this process has, like the official code's config classes: the converting
    process must load objects of its classes without being able to import it."""
    name = 'cream_private_config'
    if name not in sys.modules:
        mod = type(sys)(name)
        mod.CfgNode = type('CfgNode', (dict,), {'__module__': name})  # yacs' CfgNode is a dict subclass
        mod.Args = type('Args', (), {'__module__': name})
        sys.modules[name] = mod
    return sys.modules[name]


def _config_objects():
    mod = _private_module()
    cfg = mod.CfgNode(NET={'SELECTION': 14}, LR=0.064)
    cfg.__dict__['frozen'] = True
    args = mod.Args()
    args.__dict__.update(model='cream', lr=0.064)
    return cfg, args


def save_official_checkpoint(model, path, legacy=False, module_prefix=False, ema=None, with_config=True):
    """Write ``model`` the way the official release did (timm 0.1 CheckpointSaver layout).

    ``ema``: a second model whose weights go to ``state_dict_ema`` (None: no EMA entry).
    """
    def sd(m):
        out = OrderedDict((('module.' if module_prefix else '') + k, v) for k, v in m.state_dict().items())
        return out
    ckpt = {'epoch': 499, 'arch': 'cream', 'state_dict': sd(model), 'version': 2, 'metric': 53.8,
            'optimizer': torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).state_dict()}
    if ema is not None:
        ckpt['state_dict_ema'] = sd(ema)
    if with_config:
        ckpt['cfg'], ckpt['args'] = _config_objects()
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return ckpt
