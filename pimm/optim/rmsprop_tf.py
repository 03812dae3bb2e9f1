"""TensorFlow-style RMSprop (timm's ``RMSpropTF``) and the per-group optimizer base it is built on.

``ParamGroupOptimizer`` gives Paddle optimizers PyTorch's parameter groups: every group carries its own
``lr``, ``weight_decay`` and other hyper-parameters, so a scheduler can drive groups with different base
learning rates, and a parameter whose gradient is None is left completely untouched by ``step()``.
"""
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Union

import numpy as np
import paddle

__all__ = ['ParamGroupOptimizer', 'RMSpropTF', 'ParamsT']

ParamsT = Union[Iterable[paddle.Tensor], Iterable[Dict[str, Any]]]


def _build_groups(params: ParamsT, defaults: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Parameter groups with every default filled in; frozen (``stop_gradient``) tensors dropped."""
    if isinstance(params, paddle.Tensor):
        raise TypeError('params must be an iterable of tensors or of dicts, not a single tensor')
    params = list(params)
    if params and not isinstance(params[0], dict):
        params = [{'params': params}]
    groups, seen = [], set()
    for given in params:
        tensors = given['params']
        tensors = [tensors] if isinstance(tensors, paddle.Tensor) else list(tensors)
        group = {**defaults, **given, 'params': [p for p in tensors if not p.stop_gradient]}
        ids = {id(p) for p in group['params']}
        if ids & seen:
            raise ValueError('some parameters appear in more than one parameter group')
        seen |= ids
        groups.append(group)
    if not seen:
        raise ValueError('optimizer got no trainable parameters')
    return groups


def _state_value(value: Any, param: paddle.Tensor) -> Any:
    """A saved state entry as a tensor like ``param`` (arrays and tensors) or as itself (numbers)."""
    if isinstance(value, paddle.Tensor):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        return paddle.to_tensor(value, dtype=param.dtype, place=param.place)
    if isinstance(value, np.generic):
        return value.item()
    return value


class ParamGroupOptimizer(paddle.optimizer.Optimizer):
    """Base for optimizers with PyTorch-style parameter groups (``self.param_groups``).

    Parameters with ``stop_gradient=True`` (BN running statistics, frozen weights) are never optimized.
    ``step()`` updates only parameters whose grad is not None; ``clear_grad()`` sets grads to None by
    default, so a parameter that gets no gradient (an unsampled supernet path) keeps its value and
    state. ``grad_clip_norm > 0`` clips the global gradient norm like ``torch.nn.utils.clip_grad_norm_``.
    Subclasses implement ``_update(param, grad, state, group)``.
    """

    def __init__(self, params: ParamsT, defaults: Dict[str, Any], grad_clip_norm: float = 0.) -> None:
        groups = _build_groups(params, defaults)
        super().__init__(learning_rate=float(groups[0]['lr']), parameters=[p for g in groups for p in g['params']])
        self.defaults = dict(defaults)
        self._param_groups = groups
        self.grad_clip_norm = float(grad_clip_norm)
        self.state: Dict[int, Dict[str, Any]] = {}

    @property
    def param_groups(self) -> List[Dict[str, Any]]:
        """The parameter groups, each a dict with ``params`` and its hyper-parameters."""
        return self._param_groups

    def _update(self, param: paddle.Tensor, grad: paddle.Tensor, state: Dict[str, Any],
                group: Dict[str, Any]) -> None:
        raise NotImplementedError

    def _with_grads(self) -> List[Tuple[int, paddle.Tensor, paddle.Tensor, Dict[str, Any]]]:
        found, index = [], 0
        for group in self._param_groups:
            for param in group['params']:
                if param.grad is not None and not param.stop_gradient:
                    found.append((index, param, param.grad, group))
                index += 1
        return found

    def _clip_coef(self, grads: List[paddle.Tensor]) -> Union[paddle.Tensor, None]:
        if self.grad_clip_norm <= 0 or not grads:
            return None
        norms = paddle.stack([paddle.linalg.norm(g.astype('float32').flatten()) for g in grads])
        total = paddle.linalg.norm(norms)
        return paddle.clip(self.grad_clip_norm / (total + 1e-6), max=1.0)

    def _skip_for_inf(self) -> bool:
        """``paddle.amp.GradScaler.step`` sets ``found_inf`` before calling :meth:`step`: skip the update
        when the scaled gradients overflowed, as Paddle's own optimizers do, and report it back as a bool."""
        found_inf = self._get_auxiliary_var('found_inf')
        if found_inf is None:
            return False
        skip = bool(found_inf)
        self._set_auxiliary_var('found_inf', skip)
        return skip

    @paddle.no_grad()
    def step(self) -> None:
        """Update every parameter that has a gradient; the others are not touched."""
        if self._skip_for_inf():
            return
        found = self._with_grads()
        coef = self._clip_coef([grad for _, _, grad, _ in found])
        for index, param, grad, group in found:
            if coef is not None:
                grad = grad * coef.astype(grad.dtype)
            self._update(param, grad, self.state.setdefault(index, {}), group)

    def minimize(self, loss: paddle.Tensor, startup_program: Any = None, parameters: Any = None,
                 no_grad_set: Any = None) -> Tuple[list, list]:
        """Dygraph only: the gradients come from ``loss.backward()``; same as :meth:`step`."""
        self.step()
        return [], []

    def clear_grad(self, set_to_zero: bool = False) -> None:
        """Set every grad to None (default: the next step skips parameters that get no new gradient),
        or to zeros with ``set_to_zero=True`` (momentum and weight decay then still move them)."""
        for group in self._param_groups:
            for param in group['params']:
                param.clear_gradient(set_to_zero)

    def get_lr(self) -> float:
        """The learning rate of the first parameter group."""
        return float(self._param_groups[0]['lr'])

    def set_lr(self, value: float) -> None:
        """Set the learning rate of every parameter group to ``value``."""
        for group in self._param_groups:
            group['lr'] = float(value)
        self._learning_rate = float(value)

    def state_dict(self) -> Dict[str, Any]:
        """``{'state': {index: {name: tensor or number}}, 'param_groups': [hyper-parameters + indices]}``;
        parameters are numbered in group order, as in PyTorch."""
        groups, start = [], 0
        for group in self._param_groups:
            count = len(group['params'])
            saved = {k: v for k, v in group.items() if k != 'params'}
            saved['params'] = list(range(start, start + count))
            groups.append(saved)
            start += count
        return {'state': {i: dict(s) for i, s in self.state.items()}, 'param_groups': groups}

    def check_state_dict(self, state_dict: Any) -> None:
        """``ValueError`` in one line unless ``state_dict`` fits this optimizer whole: its groups' sizes and
        hyper-parameters (finite numbers where this optimizer has numbers), every state entry's parameter
        index, and every per-parameter tensor's shape (the parameter's), floating dtype and finiteness.
        Checked before anything is loaded, so a resume can refuse it before its run starts."""
        saved = state_dict.get('param_groups') if isinstance(state_dict, Mapping) else None
        sizes = [len(g['params']) for g in self._param_groups]
        if not isinstance(saved, list) or not all(isinstance(g, Mapping) for g in saved) \
                or [len(g.get('params', ())) for g in saved] != sizes:
            found = [len(g.get('params', ())) for g in saved] if isinstance(saved, list) and all(
                isinstance(g, Mapping) for g in saved) else type(saved).__name__
            raise ValueError(f'optimizer state does not fit: group sizes {found} vs optimizer {sizes}')
        for i, (group, saved_group) in enumerate(zip(self._param_groups, saved)):
            for key, value in group.items():
                if key != 'params' and isinstance(value, (int, float)) and not isinstance(value, bool):
                    theirs = saved_group.get(key, value)
                    if isinstance(theirs, bool) or not isinstance(theirs, (int, float, np.number)) \
                            or not np.isfinite(theirs):
                        raise ValueError(f"optimizer state: group {i}'s {key} is {theirs!r}, not a finite number")
        params = [p for g in self._param_groups for p in g['params']]
        position = {}
        for idx in (idx for g in saved for idx in g['params']):
            if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
                raise ValueError(f'optimizer state: parameter index {idx!r} is not an integer')
            position[int(idx)] = len(position)
        entries = state_dict.get('state', {})
        if not isinstance(entries, Mapping):
            raise ValueError(f"optimizer state: 'state' is a {type(entries).__name__}, not a mapping")
        for key, entry in entries.items():
            if key not in position or not isinstance(entry, Mapping):
                raise ValueError(f'optimizer state: entry {key!r} names no parameter of the groups')
            shape = list(params[position[key]].shape)
            for name, value in entry.items():
                if isinstance(value, paddle.Tensor):
                    value = value.numpy()
                if isinstance(value, np.ndarray) and value.ndim > 0:
                    if list(value.shape) != shape or value.dtype.kind != 'f' or not np.isfinite(value).all():
                        raise ValueError(f'optimizer state: {name} of parameter {key} is {value.dtype} '
                                         f'{list(value.shape)}{"" if np.isfinite(value).all() else " with NaN/inf"}'
                                         f', the parameter is float {shape}')

    def set_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (tensors or numpy arrays); the groups must have the same sizes."""
        saved = state_dict.get('param_groups') if isinstance(state_dict, Mapping) else None
        sizes = [len(g['params']) for g in self._param_groups]
        if not isinstance(saved, list) or [len(g.get('params', ())) for g in saved] != sizes:
            found = [len(g.get('params', ())) for g in saved] if isinstance(saved, list) else None
            raise ValueError(f'optimizer state does not fit: group sizes {found} vs optimizer {sizes}')
        params = [p for g in self._param_groups for p in g['params']]
        position = {int(k): i for i, k in enumerate(idx for g in saved for idx in g['params'])}
        self.state = {}
        for key, entry in state_dict.get('state', {}).items():
            i = position[int(key)]
            self.state[i] = {name: _state_value(v, params[i]) for name, v in entry.items()}
        for group, saved_group in zip(self._param_groups, saved):
            group.update({k: v for k, v in saved_group.items() if k != 'params'})
        self._learning_rate = self.get_lr()


class RMSpropTF(ParamGroupOptimizer):
    """RMSprop as TensorFlow does it (timm's ``RMSpropTF``).

    Unlike PyTorch's RMSprop: ``eps`` is added inside the square root, the squared average starts at
    ones, and with ``lr_in_momentum`` the learning rate is applied inside the momentum buffer
    (``buf = momentum * buf + lr * g / sqrt(avg + eps); p -= buf``). Weight decay is L2 added to the
    gradient, or decoupled (``p *= 1 - lr * wd``) with ``decoupled_decay``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.9, eps: float = 1e-10,
                 weight_decay: float = 0., momentum: float = 0., centered: bool = False,
                 decoupled_decay: bool = False, lr_in_momentum: bool = True, grad_clip_norm: float = 0.) -> None:
        if lr < 0 or eps < 0 or momentum < 0 or weight_decay < 0 or alpha < 0:
            raise ValueError(f'invalid RMSpropTF hyper-parameter: lr={lr}, alpha={alpha}, eps={eps}, '
                             f'momentum={momentum}, weight_decay={weight_decay}')
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, decoupled_decay=decoupled_decay, lr_in_momentum=lr_in_momentum)
        super().__init__(params, defaults, grad_clip_norm)

    def _update(self, param: paddle.Tensor, grad: paddle.Tensor, state: Dict[str, Any],
                group: Dict[str, Any]) -> None:
        lr, wd, momentum, rate = group['lr'], group['weight_decay'], group['momentum'], 1. - group['alpha']
        if not state:
            state['square_avg'] = paddle.ones_like(param)
            if momentum > 0:
                state['momentum_buffer'] = paddle.zeros_like(param)
            if group['centered']:
                state['grad_avg'] = paddle.zeros_like(param)
        if wd:
            if group['decoupled_decay']:
                param.scale_(1. - lr * wd)
            else:
                grad = grad + param * wd
        square_avg = state['square_avg']
        square_avg.add_((grad * grad - square_avg) * rate)
        if group['centered']:
            grad_avg = state['grad_avg']
            grad_avg.add_((grad - grad_avg) * rate)
            avg = (square_avg - grad_avg * grad_avg + group['eps']).sqrt()
        else:
            avg = (square_avg + group['eps']).sqrt()
        if momentum > 0:
            buf = state['momentum_buffer'].scale_(momentum)
            if group['lr_in_momentum']:
                param.subtract_(buf.add_(grad / avg * lr))
            else:
                param.subtract_(buf.add_(grad / avg) * lr)
        else:
            param.subtract_(grad / avg * lr)
