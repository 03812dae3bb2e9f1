"""``create_model``: build a registered network, optionally loading a checkpoint."""
from typing import Optional

import paddle.nn as nn

from ._helpers import load_checkpoint
from ._registry import model_entrypoint

__all__ = ['create_model']


def create_model(model_name: str, pretrained: bool = False, num_classes: int = 1000, drop_rate: float = 0.,
                 checkpoint_path: Optional[str] = None, **kwargs) -> nn.Layer:
    """Build ``model_name`` (see :func:`list_models`) and load ``checkpoint_path`` if given.

    There are no download hubs here: ``pretrained=True`` is refused, convert the
    official weights with ``python -m torch2paddle`` and pass ``checkpoint_path``.
    """
    if pretrained:
        raise ValueError('pretrained=True needs downloadable weights, which pimm does not fetch; '
                         'convert them with `python -m torch2paddle` and pass checkpoint_path')
    model = model_entrypoint(model_name)(num_classes=num_classes, drop_rate=drop_rate, **kwargs)
    if checkpoint_path:
        load_checkpoint(model, checkpoint_path)
    return model
