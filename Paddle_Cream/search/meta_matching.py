"""Teacher selection and the meta-matching network (SPEC section 5, steps 3, 4 and 6).

The meta layer scores how well a board entry suits the current student path; the matching
weight ``m = sigmoid(-score)`` scales the distillation loss. The meta layer is trained so
that one (simulated) distillation step of the student lowers its validation loss.

Teacher choice scores every board entry as if its stored slice went through the student path
alone (train-mode BatchNorm normalises each slice with its own statistics), as the official
per-entry forwards do, but in ONE batched forward: each BatchNorm computes per-slice statistics
(:func:`per_slice_batch_stats`). The meta update weights its distillation loss by that same
matching score m of the chosen teacher, computed from the teacher's stored slice.

Two slips of the official code are not copied: it took ``m`` from the *last* board entry's
score instead of the chosen teacher's, and it simulated the student step with the meta
layer's learning rate instead of the student's. It also applied the chain rule only through
the first parameter (the stem conv); here it runs over all of the path's parameters.

Paddle 3.x has no double-backward for softmax, log_softmax, flatten, hardsigmoid or relu6,
so the second-order term is a central finite difference of first derivatives (as in DARTS).
"""
import contextlib
import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from pimm.loss import SoftTargetCrossEntropy

from .board import BoardEntry, PrioritizedBoard

__all__ = ['MetaMatcher', 'preserved_bn_stats', 'per_slice_batch_stats']

Tensors = List[paddle.Tensor]


@contextlib.contextmanager
def preserved_bn_stats(model: nn.Layer) -> Iterator[None]:
    """Restore every BatchNorm running mean/variance (``_mean``/``_variance``) of ``model`` on exit."""
    saved = [(layer, layer._mean.clone(), layer._variance.clone()) for layer in model.sublayers(include_self=True)
             if isinstance(getattr(layer, '_mean', None), paddle.Tensor)
             and isinstance(getattr(layer, '_variance', None), paddle.Tensor)]
    try:
        yield
    finally:
        for layer, mean, var in saved:
            layer._mean.set_value(mean)
            layer._variance.set_value(var)


def _batch_norm_per_slice(layer: nn.Layer, slice_size: int):
    """A train-mode forward for ``layer`` (a BatchNorm2D) normalising each run of ``slice_size`` images
    with that run's own (biased) batch statistics, as if it went through alone; running stats untouched.

    The P slices are moved into the channel axis, ``[P*S, C, H, W] -> [S, P*C, H, W]``, so Paddle's
    fused batch-norm kernel computes one statistic per (slice, channel) over (S, H, W)."""
    def forward(x: paddle.Tensor) -> paddle.Tensor:
        n, c, h, w = x.shape
        if n % slice_size:
            raise ValueError(f'{n} images do not split into slices of {slice_size}')
        p = n // slice_size
        folded = x.reshape([p, slice_size, c, h, w]).transpose([1, 0, 2, 3, 4]).reshape([slice_size, p * c, h, w])
        weight = None if layer.weight is None else layer.weight.tile([p])
        bias = None if layer.bias is None else layer.bias.tile([p])
        out = F.batch_norm(folded, paddle.zeros([p * c], x.dtype), paddle.ones([p * c], x.dtype), weight, bias,
                           training=True, epsilon=layer._epsilon)
        return out.reshape([slice_size, p, c, h, w]).transpose([1, 0, 2, 3, 4]).reshape([n, c, h, w])
    return forward


@contextlib.contextmanager
def per_slice_batch_stats(model: nn.Layer, slice_size: int) -> Iterator[None]:
    """Inside, every BatchNorm2D of ``model`` in train mode normalises each consecutive ``slice_size``
    images of its input with their own batch statistics (running stats neither used nor updated):
    one forward of P stacked slices gives each slice the outputs of its own forward."""
    layers = [layer for layer in model.sublayers(include_self=True)
              if isinstance(layer, nn.BatchNorm2D) and layer.training and not layer._use_global_stats]
    for layer in layers:
        layer.forward = _batch_norm_per_slice(layer, slice_size)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward  # back to the class's forward


def _global_norm(tensors: Tensors) -> float:
    return math.sqrt(sum(float((t * t).sum()) for t in tensors))


def _dot(a: Tensors, b: Tensors) -> float:
    return sum(float((x * y).sum()) for x, y in zip(a, b))


def _grads(loss: paddle.Tensor, params: Tensors) -> Tensors:
    """First derivatives of ``loss`` w.r.t. ``params`` (zeros for unused ones), detached."""
    grads = paddle.grad(loss, params, allow_unused=True)
    return [paddle.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]


def _assign(params: Tensors, values: Tensors) -> None:
    with paddle.no_grad():
        for p, v in zip(params, values):
            p.set_value(v)


class MetaMatcher(nn.Layer):
    """The meta-matching network: one linear layer ``num_classes * slice_size -> 1`` scoring
    ``flatten(softmax(student logits) - teacher soft labels)`` over a slice of images."""

    def __init__(self, num_classes: int, slice_size: int):
        super().__init__()
        self.num_classes, self.slice_size = int(num_classes), int(slice_size)
        self.meta_layer = nn.Linear(self.num_classes * self.slice_size, 1)
        self.kd_loss = SoftTargetCrossEntropy()

    def _score(self, student_probs: paddle.Tensor, teacher_probs: paddle.Tensor) -> paddle.Tensor:
        """Scores ``[P]`` for probabilities of shape ``[P * SLICE, classes]``."""
        diff = (student_probs - teacher_probs).reshape([-1, self.slice_size * self.num_classes])
        return self.meta_layer(diff).reshape([-1])

    def _check_slice(self, logits: paddle.Tensor, teacher_probs: paddle.Tensor) -> None:
        want = [self.slice_size, self.num_classes]
        if list(logits.shape) != want or list(teacher_probs.shape) != want:
            raise ValueError(f'student logits and teacher probabilities must both be {want}, got '
                             f'{list(logits.shape)} and {list(teacher_probs.shape)}')

    def scores(self, model: nn.Layer, path: Sequence[Sequence[int]], board: PrioritizedBoard) -> paddle.Tensor:
        """Meta scores ``[P]`` of all P board entries for the student ``path``, from ONE forward of
        the P * SLICE stored inputs. In train mode each BatchNorm normalises every entry's slice with
        that slice's own statistics, so a score equals the one from the entry's own forward (SPEC 5.4);
        running stats are kept."""
        entries = board.entries
        if not entries:
            raise ValueError('cannot score an empty board')
        dtype = self.meta_layer.weight.dtype
        inputs = paddle.to_tensor(np.concatenate([e.inputs for e in entries]), dtype=dtype)
        labels = paddle.to_tensor(np.concatenate([e.soft_labels for e in entries]), dtype=dtype)
        with per_slice_batch_stats(model, self.slice_size):
            probs = F.softmax(model(inputs, path), axis=-1)
        return self._score(probs, labels)

    def select_teacher(self, model: nn.Layer, path: Sequence[Sequence[int]], board: PrioritizedBoard,
                       method: str = 'meta') -> Tuple[BoardEntry, float]:
        """``(teacher entry, m)``. ``'top1'``: the best entry, m = 0.5. ``'meta'``: the entry with
        the highest score, m = sigmoid(-score) of THAT entry (the official code used the last
        entry's score, a slip). No gradients."""
        if board.is_empty:
            raise ValueError('cannot select a teacher from an empty board')
        if method == 'top1':
            return board.best(), 0.5
        if method != 'meta':
            raise ValueError(f"method must be 'meta' or 'top1', got {method!r}")
        with paddle.no_grad():
            scores = self.scores(model, path, board).numpy()
        best = int(np.argmax(scores))
        return board.entries[best], float(1. / (1. + np.exp(float(scores[best]))))

    def matching_weight(self, student_logits: paddle.Tensor, teacher_probs: paddle.Tensor) -> paddle.Tensor:
        """Scalar m(phi) = sigmoid(-meta_layer(flatten(softmax(student_logits) - teacher_probs)))
        for one slice ``[SLICE, classes]``; differentiable w.r.t. the meta layer and the logits."""
        self._check_slice(student_logits, teacher_probs)
        score = self._score(F.softmax(student_logits, axis=-1), teacher_probs)
        return F.sigmoid(-score).reshape([])

    def _entry_tensors(self, entry: BoardEntry) -> Tuple[paddle.Tensor, paddle.Tensor]:
        dtype = self.meta_layer.weight.dtype
        return paddle.to_tensor(entry.inputs, dtype=dtype), paddle.to_tensor(entry.soft_labels, dtype=dtype)

    def _train_loss(self, logits: paddle.Tensor, teacher_probs: paddle.Tensor, entry_logits: paddle.Tensor,
                    entry_labels: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """L_train = m * KD and m: KD of the student logits on the train slice against the teacher's
        probabilities there, m the chosen teacher's matching score from its stored slice."""
        m = self.matching_weight(entry_logits, entry_labels)
        return m * self.kd_loss(logits, teacher_probs), m

    def _phi_grad(self, model: nn.Layer, path: Sequence[Sequence[int]], x_train: paddle.Tensor,
                  teacher_probs: paddle.Tensor, entry_x: paddle.Tensor, entry_labels: paddle.Tensor) -> Tensors:
        """grad_phi L_train at the model's current weights (the student forwards need no graph)."""
        with paddle.no_grad():
            logits, entry_logits = model(x_train, path), model(entry_x, path)
        loss, _ = self._train_loss(logits.detach(), teacher_probs, entry_logits.detach(), entry_labels)
        return _grads(loss, list(self.meta_layer.parameters()))

    def meta_gradient(self, model: nn.Layer, path: Sequence[Sequence[int]], teacher: BoardEntry,
                      teacher_probs: paddle.Tensor, x_train: paddle.Tensor, x_val: paddle.Tensor,
                      y_val: paddle.Tensor, student_lr: float, grad_clip: float = 1.0,
                      eps_scale: float = 1e-3) -> Tuple[Tensors, Dict[str, float]]:
        """dJ/dphi for J(phi) = CE_val(theta - xi * clip(grad_theta L_train(theta, phi))), xi = student_lr,
        over all path parameters theta, with only first derivatives. L_train = m * KD(student(x_train),
        teacher_probs), m = sigmoid(-meta(softmax(student(teacher.inputs)) - teacher.soft_labels)) the
        chosen ``teacher`` entry's matching score (SPEC 5.3, 5.6).

        * G = grad_theta L_train, c = min(1, grad_clip / |G|), theta' = theta - xi c G;
        * v = grad CE_val(theta'); u = J_clip^T v = v if unclipped, else c (v - (v.G) G / |G|^2);
        * dJ/dphi = -xi d/dphi[u . grad_theta L_train] ~= -xi (grad_phi L_train(theta + eps u)
          - grad_phi L_train(theta - eps u)) / (2 eps), eps = eps_scale / |u|. (A step of norm 1e-2
          measured up to 30% off the exact gradient on small hypernets, 1e-3 within 2% in float32.)

        theta and BatchNorm running stats are restored exactly. In train mode BN uses batch
        statistics, so every loss here depends on its batch (and drop-path adds noise).
        Returns ``(grads per meta-layer parameter, {'val_loss', 'm', 'student_grad_norm'})``.
        """
        params = model.path_parameters(path)
        theta = [p.detach().clone() for p in params]
        entry_x, entry_labels = self._entry_tensors(teacher)
        with preserved_bn_stats(model):
            try:
                loss, m = self._train_loss(model(x_train, path), teacher_probs, model(entry_x, path), entry_labels)
                g = _grads(loss, params)
                g_norm = _global_norm(g)
                c = min(1., grad_clip / g_norm) if g_norm > 0 else 1.
                _assign(params, [t - student_lr * c * gi for t, gi in zip(theta, g)])
                val_loss = F.cross_entropy(model(x_val, path), y_val)
                v = _grads(val_loss, params)
                if c < 1.:  # Jacobian of G -> G * tau / |G| is c (I - G G^T / |G|^2)
                    proj = _dot(v, g) / g_norm ** 2
                    u = [c * (vi - proj * gi) for vi, gi in zip(v, g)]
                else:
                    u = v
                u_norm = _global_norm(u)
                phi = list(self.meta_layer.parameters())
                if u_norm == 0:
                    grad_phi = [paddle.zeros_like(p) for p in phi]
                else:
                    eps = eps_scale / u_norm
                    _assign(params, [t + eps * ui for t, ui in zip(theta, u)])
                    plus = self._phi_grad(model, path, x_train, teacher_probs, entry_x, entry_labels)
                    _assign(params, [t - eps * ui for t, ui in zip(theta, u)])
                    minus = self._phi_grad(model, path, x_train, teacher_probs, entry_x, entry_labels)
                    grad_phi = [-student_lr * (a - b) / (2 * eps) for a, b in zip(plus, minus)]
            finally:
                _assign(params, theta)
        return grad_phi, {'val_loss': float(val_loss), 'm': float(m), 'student_grad_norm': g_norm}

    def meta_step(self, model: nn.Layer, path: Sequence[Sequence[int]], teacher: BoardEntry,
                  teacher_probs: paddle.Tensor, x_train: paddle.Tensor, x_val: paddle.Tensor, y_val: paddle.Tensor,
                  student_lr: float, meta_lr: float, grad_clip: float = 1.0, eps_scale: float = 1e-3,
                  optimizer: Optional[paddle.optimizer.Optimizer] = None) -> Dict[str, float]:
        """One meta-layer update from :meth:`meta_gradient`: the gradient is clipped to norm
        ``grad_clip``, then plain SGD at ``meta_lr`` (or ``optimizer``, which must hold only the
        meta layer's parameters). The model's weights and BN stats are left untouched.
        Returns ``{'meta_grad_norm' (before clipping), 'val_loss', 'm'}``."""
        grad_phi, info = self.meta_gradient(model, path, teacher, teacher_probs, x_train, x_val, y_val, student_lr,
                                            grad_clip=grad_clip, eps_scale=eps_scale)
        norm = _global_norm(grad_phi)
        scale = min(1., grad_clip / norm) if norm > 0 else 1.
        grad_phi = [scale * g for g in grad_phi]
        phi = list(self.meta_layer.parameters())
        if optimizer is None:
            _assign(phi, [p.detach() - meta_lr * g for p, g in zip(phi, grad_phi)])
        else:
            for p in phi:
                p.clear_gradient(set_to_zero=False)
            surrogate = paddle.add_n([(p * g).sum() for p, g in zip(phi, grad_phi)])
            surrogate.backward()  # leaves exactly grad_phi in p.grad
            optimizer.step()
            optimizer.clear_grad(set_to_zero=False)
        return {'meta_grad_norm': norm, 'val_loss': info['val_loss'], 'm': info['m']}
