"""Optimizers with PyTorch semantics and ``create_optimizer`` (timm's ``create_optimizer_v2`` names).

SGD, Adam, AdamW and RMSprop compute exactly what ``torch.optim`` does (coupled L2 weight decay added to
the gradient, decoupled for AdamW) on :class:`ParamGroupOptimizer` groups: each group has its own ``lr``,
parameters without a gradient are not touched, BN running statistics are never optimized.
"""
import fnmatch
import math
from typing import Any, Dict, List, Optional, Sequence, Union

import paddle
import paddle.nn as nn

from .rmsprop_tf import ParamGroupOptimizer, ParamsT, RMSpropTF

__all__ = ['SGD', 'Adam', 'AdamW', 'RMSprop', 'create_optimizer', 'param_groups_weight_decay', 'list_optimizers']


def _check(name: str, **values: float) -> None:
    bad = {k: v for k, v in values.items() if v < 0}
    if bad:
        raise ValueError(f'invalid {name} hyper-parameter(s): ' + ', '.join(f'{k}={v}' for k, v in bad.items()))


class SGD(ParamGroupOptimizer):
    """``torch.optim.SGD``: ``g += wd * p; buf = momentum * buf + g; p -= lr * (g + momentum * buf if
    nesterov else buf)``; the buffer starts as the first gradient."""

    def __init__(self, params: ParamsT, lr: float = 1e-2, momentum: float = 0., weight_decay: float = 0.,
                 nesterov: bool = False, grad_clip_norm: float = 0.) -> None:
        _check('SGD', lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and momentum <= 0:
            raise ValueError('nesterov momentum requires momentum > 0')
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults, grad_clip_norm)

    def _update(self, param: paddle.Tensor, grad: paddle.Tensor, state: Dict[str, Any],
                group: Dict[str, Any]) -> None:
        momentum = group['momentum']
        if group['weight_decay']:
            grad = grad + param * group['weight_decay']
        if momentum:
            buf = state.get('momentum_buffer')
            if buf is None:
                buf = state['momentum_buffer'] = grad.clone()
            else:
                buf.scale_(momentum).add_(grad)
            grad = grad + buf * momentum if group['nesterov'] else buf
        param.subtract_(grad * group['lr'])


class Adam(ParamGroupOptimizer):
    """``torch.optim.Adam`` (L2 weight decay added to the gradient); :class:`AdamW` decouples it."""
    decoupled_weight_decay = False

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0., grad_clip_norm: float = 0.) -> None:
        _check(type(self).__name__, lr=lr, eps=eps, weight_decay=weight_decay, beta1=betas[0], beta2=betas[1])
        defaults = dict(lr=lr, betas=tuple(float(b) for b in betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults, grad_clip_norm)

    def _update(self, param: paddle.Tensor, grad: paddle.Tensor, state: Dict[str, Any],
                group: Dict[str, Any]) -> None:
        lr, wd, (beta1, beta2) = group['lr'], group['weight_decay'], group['betas']
        if wd:
            if self.decoupled_weight_decay:
                param.scale_(1. - lr * wd)
            else:
                grad = grad + param * wd
        if not state:
            state.update(step=0, exp_avg=paddle.zeros_like(param), exp_avg_sq=paddle.zeros_like(param))
        state['step'] += 1
        exp_avg, exp_avg_sq = state['exp_avg'], state['exp_avg_sq']
        exp_avg.add_((grad - exp_avg) * (1. - beta1))
        exp_avg_sq.scale_(beta2).add_(grad * grad * (1. - beta2))
        step_size = lr / (1. - beta1 ** state['step'])
        denom = exp_avg_sq.sqrt() / math.sqrt(1. - beta2 ** state['step']) + group['eps']
        param.subtract_(exp_avg / denom * step_size)


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay ``p *= 1 - lr * wd`` (default 1e-2)."""
    decoupled_weight_decay = True

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, grad_clip_norm: float = 0.) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, grad_clip_norm)


class RMSprop(ParamGroupOptimizer):
    """``torch.optim.RMSprop``: squared average from zeros, ``eps`` added after the square root, the
    learning rate applied outside the momentum buffer. See :class:`RMSpropTF` for TensorFlow's variant."""

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0., momentum: float = 0., centered: bool = False,
                 grad_clip_norm: float = 0.) -> None:
        _check('RMSprop', lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)
        super().__init__(params, defaults, grad_clip_norm)

    def _update(self, param: paddle.Tensor, grad: paddle.Tensor, state: Dict[str, Any],
                group: Dict[str, Any]) -> None:
        alpha, momentum = group['alpha'], group['momentum']
        if group['weight_decay']:
            grad = grad + param * group['weight_decay']
        if not state:
            state['square_avg'] = paddle.zeros_like(param)
            if momentum > 0:
                state['momentum_buffer'] = paddle.zeros_like(param)
            if group['centered']:
                state['grad_avg'] = paddle.zeros_like(param)
        square_avg = state['square_avg'].scale_(alpha).add_(grad * grad * (1. - alpha))
        if group['centered']:
            grad_avg = state['grad_avg']
            grad_avg.add_((grad - grad_avg) * (1. - alpha))
            avg = (square_avg - grad_avg * grad_avg).sqrt() + group['eps']
        else:
            avg = square_avg.sqrt() + group['eps']
        if momentum > 0:
            param.subtract_(state['momentum_buffer'].scale_(momentum).add_(grad / avg) * group['lr'])
        else:
            param.subtract_(grad / avg * group['lr'])


# name -> (class, fixed arguments, takes momentum, takes eps); timm's 'sgd' is Nesterov momentum
_OPTIMIZERS = {
    'sgd': (SGD, {'nesterov': True}, True, False),
    'nesterov': (SGD, {'nesterov': True}, True, False),
    'momentum': (SGD, {'nesterov': False}, True, False),
    'rmsprop': (RMSprop, {'alpha': 0.9}, True, True),
    'rmsproptf': (RMSpropTF, {'alpha': 0.9}, True, True),
    'adam': (Adam, {}, False, True),
    'adamw': (AdamW, {}, False, True),
}


def list_optimizers() -> List[str]:
    """The names :func:`create_optimizer` accepts."""
    return list(_OPTIMIZERS)


def param_groups_weight_decay(model: nn.Layer, weight_decay: float = 1e-5, exclude_1d: bool = True,
                              no_weight_decay_list: Sequence[str] = (),
                              exclude: Sequence[paddle.Tensor] = ()) -> List[Dict[str, Any]]:
    """timm's grouping: with ``exclude_1d``, 1-d parameters (biases, norm weights) and ``*.bias`` get no
    weight decay, nor do names matching ``no_weight_decay_list``; frozen tensors (BN statistics) and
    ``exclude`` are left out. The no-decay group comes first; empty groups are dropped."""
    skip = {id(p) for p in exclude}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.stop_gradient or id(param) in skip:
            continue
        excluded = exclude_1d and (param.ndim <= 1 or name.endswith('.bias'))
        if not weight_decay or excluded or any(fnmatch.fnmatch(name, pat) for pat in no_weight_decay_list):
            no_decay.append(param)
        else:
            decay.append(param)
    groups = []
    if no_decay:
        groups.append({'params': no_decay, 'weight_decay': 0.})
    if decay:
        groups.append({'params': decay, 'weight_decay': weight_decay})
    return groups


def _param_groups(model_or_params: Union[nn.Layer, ParamsT], weight_decay: float, filter_bias_and_bn: bool,
                  extra: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    extra = [dict(g, params=list(g['params'])) for g in extra]
    if isinstance(model_or_params, nn.Layer):
        model = model_or_params._layers if isinstance(model_or_params, paddle.DataParallel) else model_or_params
        no_wd = list(getattr(model, 'no_weight_decay', lambda: ())())
        taken = [p for g in extra for p in g['params']]
        groups = param_groups_weight_decay(model, weight_decay, filter_bias_and_bn, no_wd, exclude=taken)
    else:
        groups = list(model_or_params)
        if groups and not isinstance(groups[0], dict):
            groups = [{'params': groups}]
    return groups + extra


def create_optimizer(model_or_params: Union[nn.Layer, ParamsT], opt: str = 'sgd', lr: float = 0.01,
                     weight_decay: float = 0., momentum: float = 0.9, eps: Optional[float] = None,
                     filter_bias_and_bn: bool = True, param_groups: Optional[Sequence[Dict[str, Any]]] = None,
                     grad_clip_norm: float = 0., fused_units: Optional[Sequence[Sequence[nn.Layer]]] = None
                     ) -> paddle.optimizer.Optimizer:
    """An optimizer by timm name: ``sgd``/``nesterov`` (Nesterov momentum), ``momentum``, ``rmsprop``,
    ``rmsproptf``, ``adam``, ``adamw``.

    For a model, parameters with ndim <= 1 get no weight decay when ``filter_bias_and_bn`` (two groups,
    like timm's ``param_groups_weight_decay``); BN running statistics are never included. ``param_groups``
    are extra groups (e.g. ``{'params': meta.parameters(), 'lr': 1e-4}``) appended after those, their
    parameters taken out of them; with a model an extra group has no weight decay unless it sets one.
    ``grad_clip_norm > 0`` clips the global gradient norm at each step.

    ``fused_units`` (lists of the model's layers, every tensor in one; SGD-family names only): the model's
    tensors are moved into :class:`~pimm.utils.fused_storage.FusedUnits` storage (``optimizer.fused``) and a
    :class:`~pimm.optim.fused_sgd.FusedSGD` returned, whose ``step(units)`` updates only those units.
    """
    name = opt.lower()
    if name not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{opt}'; valid choices: {', '.join(_OPTIMIZERS)}")
    cls, kwargs, takes_momentum, takes_eps = _OPTIMIZERS[name]
    kwargs = dict(kwargs, lr=lr, weight_decay=weight_decay, grad_clip_norm=grad_clip_norm)
    if takes_momentum:
        kwargs['momentum'] = momentum
    if takes_eps and eps is not None:
        kwargs['eps'] = eps
    groups = _param_groups(model_or_params, weight_decay, filter_bias_and_bn, param_groups or ())
    if isinstance(model_or_params, nn.Layer):
        kwargs['weight_decay'] = 0.  # the groups carry it, as in timm; extra groups default to none
    if fused_units is None:
        return cls(groups, **kwargs)
    if cls is not SGD or grad_clip_norm:
        raise ValueError(f"fused storage steps the SGD family (sgd, nesterov, momentum) without gradient "
                         f"clipping, got '{opt}'" + (f' with grad_clip_norm {grad_clip_norm}' if grad_clip_norm else ''))
    from pimm.utils.fused_storage import FusedUnits
    from .fused_sgd import FusedSGD
    fused = FusedUnits(fused_units, [g['params'] for g in groups])
    kwargs.pop('grad_clip_norm')
    return FusedSGD(groups, fused, **kwargs)
