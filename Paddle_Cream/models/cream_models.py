"""The six published Cream child networks, registered with pimm as ``cream_14`` ... ``cream_604``."""
from pimm.models import register_model

from .child_net import ChildNet, default_cfg_for
from .search_space import published_models

__all__ = ['create_cream', 'CREAM_MODEL_NAMES']

CREAM_MODEL_NAMES = ('14', '43', '114', '287', '481', '604')


def create_cream(selection: str, num_classes: int = 1000, **kwargs) -> ChildNet:
    """Published Cream-``selection`` (``'14'``...``'604'``) with its input size in ``default_cfg``."""
    models = published_models()
    if str(selection) not in models:
        raise ValueError(f"unknown Cream model '{selection}'; valid: {', '.join(CREAM_MODEL_NAMES)}")
    info = models[str(selection)]
    cfg = default_cfg_for(info['input_size'], num_classes, paper_top1=info['paper_top1'],
                          paper_top5=info['paper_top5'], architecture=f'cream_{selection}')
    return ChildNet(info['arch'], num_classes=num_classes, default_cfg=cfg, **kwargs)


@register_model
def cream_14(**kwargs) -> ChildNet:
    """Cream-14 (64x64 input, 53.8% top-1 in the paper)."""
    return create_cream('14', **kwargs)


@register_model
def cream_43(**kwargs) -> ChildNet:
    """Cream-43 (96x96 input, 66.3% top-1)."""
    return create_cream('43', **kwargs)


@register_model
def cream_114(**kwargs) -> ChildNet:
    """Cream-114 (160x160 input, 72.8% top-1)."""
    return create_cream('114', **kwargs)


@register_model
def cream_287(**kwargs) -> ChildNet:
    """Cream-287 (224x224 input, 77.6% top-1)."""
    return create_cream('287', **kwargs)


@register_model
def cream_481(**kwargs) -> ChildNet:
    """Cream-481 (224x224 input, 79.2% top-1)."""
    return create_cream('481', **kwargs)


@register_model
def cream_604(**kwargs) -> ChildNet:
    """Cream-604 (224x224 input, 80.0% top-1)."""
    return create_cream('604', **kwargs)
