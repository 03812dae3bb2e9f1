"""Exponential moving average of a model's weights (timm's ``ModelEmaV2`` semantics)."""
import copy
from typing import Any, Callable, Dict, Mapping, Optional

import paddle
import paddle.nn as nn

__all__ = ['ModelEma', 'unwrap_model']


def unwrap_model(model: nn.Layer) -> nn.Layer:
    """The layer inside a ``paddle.DataParallel`` wrapper (the model itself otherwise)."""
    return model._layers if isinstance(model, paddle.DataParallel) else model


class ModelEma:
    """A deep copy of ``model`` in eval mode whose state follows ``ema = decay * ema + (1 - decay) * model``.

    Every state entry is averaged, parameters and buffers alike (BN running statistics included), matched
    by position as in timm's ``ModelEmaV2``; non-float entries are copied. ``device`` (e.g. ``'cpu'``)
    keeps the copy on another device. The copy tracks no gradients. ``ModelEma(x)(input)`` runs it.
    """

    def __init__(self, model: nn.Layer, decay: float = 0.9998, device: Optional[str] = None) -> None:
        self.module = copy.deepcopy(unwrap_model(model))
        self.module.eval()
        for param in self.module.parameters():
            param.stop_gradient = True
        self.decay = decay
        self.device = device
        if device is not None:
            self.module.to(device=device)

    @paddle.no_grad()
    def _apply(self, model: nn.Layer, fn: Callable[[paddle.Tensor, paddle.Tensor], None]) -> None:
        ema_state, model_state = self.module.state_dict(), unwrap_model(model).state_dict()
        if len(ema_state) != len(model_state):
            raise ValueError(f'model has {len(model_state)} state entries, the EMA copy {len(ema_state)}')
        for ema_v, model_v in zip(ema_state.values(), model_state.values()):
            if self.device is not None:
                model_v = model_v.to(self.device)
            if ema_v.is_floating_point():
                fn(ema_v, model_v.astype(ema_v.dtype))
            else:
                ema_v.copy_(model_v, False)

    def update(self, model: nn.Layer) -> None:
        """One EMA step towards ``model`` (plain or ``DataParallel``)."""
        decay = self.decay
        self._apply(model, lambda e, m: e.scale_(decay).add_(m * (1. - decay)))

    def set(self, model: nn.Layer) -> None:
        """Copy ``model``'s state into the EMA."""
        self._apply(model, lambda e, m: e.copy_(m, False))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def state_dict(self) -> Dict[str, paddle.Tensor]:
        """The averaged weights, keyed like the model's own state dict."""
        return self.module.state_dict()

    def set_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load averaged weights (tensors or numpy arrays); the keys must be exactly the model's."""
        expected = self.module.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if missing or unexpected:
            raise KeyError(f'EMA state does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}')
        self.module.set_state_dict(dict(state_dict))
