"""pimm.optim: PyTorch-semantics optimizers on Paddle and timm's optimizer factory."""
from .optim_factory import SGD, Adam, AdamW, RMSprop, create_optimizer, list_optimizers, param_groups_weight_decay
from .rmsprop_tf import ParamGroupOptimizer, RMSpropTF
from .fused_sgd import FusedSGD
