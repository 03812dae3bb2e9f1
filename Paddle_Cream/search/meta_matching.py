"""Teacher selection and the meta-matching network (docs/reference.md §5, steps 3, 4 and 6).

The meta layer scores how well a board entry suits the current student path; the matching
weight ``m = sigmoid(-score)`` scales the distillation loss. The meta layer is trained so
that one (simulated) distillation step of the student lowers its validation loss.

Teacher choice scores every board entry as if its stored slice went through the student path
alone (train-mode BatchNorm normalises each slice with its own statistics), as the official
per-entry forwards do, but in ONE batched forward: each BatchNorm computes per-slice statistics
(:func:`per_slice_batch_stats`), locally on this process, without touching running statistics,
whatever its kind (``BatchNorm2D``, ``SyncBatchNorm``, ...). The meta update's forwards run the same
way, so the update leaves the supernet exactly as it found it and is never a cross-rank collective.

Two slips of the official code are not copied: it took ``m`` from the *last* board entry's
score instead of the chosen teacher's, and it simulated the student step with the meta
layer's learning rate instead of the student's. It also applied the chain rule only through
the first parameter (the stem conv); here it runs over all of the path's parameters.

Paddle 3.x has no double-backward for softmax, log_softmax, flatten, hardsigmoid or relu6,
so the second-order term is a central finite difference of first derivatives (as in DARTS), run in
full float32 (TF32 off) with the same dropout and drop-path masks as the loss it differentiates.
"""
import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from pimm.loss import SoftTargetCrossEntropy
from pimm.utils.fused_storage import assign_in_place
from pimm.utils.precision import ReplayableDraws, tf32_disabled

from .board import BoardEntry, PrioritizedBoard

__all__ = ['MetaMatcher', 'MetaRule', 'per_slice_batch_stats', 'batch_norm_layers', 'finite_difference_step']

Tensors = List[paddle.Tensor]
_FORMATS = {2: 'NC', 3: 'NCL', 4: 'NCHW', 5: 'NCDHW'}
# the smallest finite-difference perturbation, per weight, in units of float32 rounding of the weights
_MIN_STEP_ULPS = 256


def batch_norm_layers(model: nn.Layer) -> List[nn.Layer]:
    """Every batch-norm layer of ``model``: BatchNorm1D/2D/3D, SyncBatchNorm and the legacy BatchNorm."""
    kinds = (nn.layer.norm._BatchNormBase, nn.BatchNorm)
    return [layer for layer in model.sublayers(include_self=True) if isinstance(layer, kinds)]


def _per_slice_forward(layer: nn.Layer, slice_size: int):
    """A forward for ``layer`` normalising each run of ``slice_size`` inputs with that run's own (biased)
    batch statistics, as if it went through alone, on this process only; running stats untouched.

    The P slices are moved into the channel axis, ``[P*S, C, ...] -> [S, P*C, ...]``, so one call of
    Paddle's fused batch-norm kernel computes one statistic per (slice, channel)."""
    data_format = getattr(layer, '_data_format', 'NCHW')
    if not str(data_format).startswith('NC'):
        raise ValueError(f'per-slice batch statistics need channels-first data, got {data_format}')
    weight, bias, epsilon = getattr(layer, 'weight', None), getattr(layer, 'bias', None), layer._epsilon

    def forward(x: paddle.Tensor) -> paddle.Tensor:
        n, c, rest = x.shape[0], x.shape[1], list(x.shape[2:])
        if n % slice_size:
            raise ValueError(f'{n} images do not split into slices of {slice_size}')
        p = n // slice_size
        folded = x.reshape([p, slice_size, c, *rest]).transpose([1, 0, 2, *range(3, 3 + len(rest))])
        folded = folded.reshape([slice_size, p * c, *rest])
        out = F.batch_norm(folded, paddle.zeros([p * c], x.dtype), paddle.ones([p * c], x.dtype),
                           None if weight is None else weight.tile([p]), None if bias is None else bias.tile([p]),
                           training=True, epsilon=epsilon, data_format=_FORMATS[folded.ndim])
        out = out.reshape([slice_size, p, c, *rest]).transpose([1, 0, 2, *range(3, 3 + len(rest))])
        return out.reshape([n, c, *rest])
    return forward


@contextlib.contextmanager
def per_slice_batch_stats(model: nn.Layer, slice_size: int) -> Iterator[None]:
    """Inside, every batch norm of ``model`` in train mode (any kind) normalises each consecutive
    ``slice_size`` inputs with their own batch statistics, locally (no collective even for SyncBatchNorm);
    running statistics are neither used nor updated. One forward of P stacked slices gives each slice
    the outputs of its own forward."""
    layers = [layer for layer in batch_norm_layers(model)
              if layer.training and not getattr(layer, '_use_global_stats', False)]
    for layer in layers:
        layer.forward = _per_slice_forward(layer, slice_size)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward  # back to the class's forward


def finite_difference_step(theta_norm: paddle.Tensor, u_norm: paddle.Tensor, eps_scale: float) -> paddle.Tensor:
    """The step eps along u of the central difference: ``max(eps_scale, 256 ulp * |theta|) / |u|``.

    ``eps_scale / |u|`` alone moves each of N weights by about ``eps_scale / sqrt(N)``: on the paper's path
    (N ~ 5M, weights of rms ~0.03) that is a few hundred float32 rounding steps, and much less on larger
    ones; the floor keeps it at least 256 rounding steps of the weights' rms wide (with TF32 it would be
    a fraction of one step)."""
    finfo = np.finfo(np.float64 if theta_norm.dtype == paddle.float64 else np.float32)
    floor = theta_norm * float(_MIN_STEP_ULPS * finfo.eps)
    return paddle.maximum(floor, paddle.full_like(floor, eps_scale)) / paddle.maximum(
        u_norm, paddle.full_like(u_norm, 1e-30))


def _sum_squares(tensors: Tensors) -> paddle.Tensor:
    return paddle.add_n([(t * t).sum() for t in tensors])


def _dot(a: Tensors, b: Tensors) -> paddle.Tensor:
    return paddle.add_n([(x * y).sum() for x, y in zip(a, b)])


def _grads(loss: paddle.Tensor, params: Tensors) -> Tensors:
    """First derivatives of ``loss`` w.r.t. ``params`` (zeros for unused ones), detached."""
    grads = paddle.grad(loss, params, allow_unused=True)
    return [paddle.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]


def _assign(params: Tensors, values: Tensors) -> None:
    for p, v in zip(params, values):
        assign_in_place(p, v)  # in place: the parameters may be views of fused storage


@dataclass
class MetaRule:
    """How the meta update runs where the official code differs (SUPERNET.META_* keys); the defaults are the
    corrected update. ``real_step``: given the L_train gradients, take the student's real (clipped) optimizer step
    and keep it (the official); its learning rate is then ``student_lr`` for the chain rule only (the official
    passes the meta layer's). ``weighed``: the board entry whose score is m (the official: the last)."""
    chain: str = 'path'                  # 'path' | 'stem'
    clip: str = 'differentiated'         # 'differentiated' | 'ignored'
    val_loss: Callable = F.cross_entropy
    moving_statistics: bool = False
    real_step: Optional[Callable[[Tensors], None]] = None
    weighed: Optional[BoardEntry] = None


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

    def local_forward(self, model: nn.Layer, x: paddle.Tensor, path: Sequence[Sequence[int]]) -> paddle.Tensor:
        """``model(x, path)`` with every batch norm using each slice's own statistics, locally, running
        statistics untouched (in eval mode: the running statistics, as usual)."""
        with per_slice_batch_stats(model, self.slice_size):
            return model(x, path)

    def score_slices(self, model: nn.Layer, path: Sequence[Sequence[int]], inputs: paddle.Tensor,
                     soft_labels: paddle.Tensor, moving_statistics: bool = False) -> paddle.Tensor:
        """Meta scores ``[P]`` of P stored slices (``inputs`` ``[P * SLICE, ...]`` and their soft labels) for
        the student ``path``, from ONE forward, each scored as in its own forward (docs/reference.md §5.4). On the
        device, no host synchronisation, no gradient. ``moving_statistics`` (the official code): one
        forward per slice, in order, each moving BatchNorm's running statistics (same outputs)."""
        dtype = self.meta_layer.weight.dtype
        inputs = inputs.astype(dtype)
        with paddle.no_grad():
            if moving_statistics:
                n = self.slice_size
                logits = paddle.concat([model(inputs[i:i + n], path) for i in range(0, inputs.shape[0], n)])
            else:
                logits = self.local_forward(model, inputs, path)
            return self._score(F.softmax(logits, axis=-1), soft_labels.astype(dtype))

    def scores(self, model: nn.Layer, path: Sequence[Sequence[int]], board: PrioritizedBoard,
               moving_statistics: bool = False) -> paddle.Tensor:
        """Meta scores ``[P]`` of all P board entries for the student ``path`` (:meth:`score_slices`)."""
        if board.is_empty:
            raise ValueError('cannot score an empty board')
        return self.score_slices(model, path, *board.stacked(), moving_statistics=moving_statistics)

    def select_teacher(self, model: nn.Layer, path: Sequence[Sequence[int]], board: PrioritizedBoard,
                       method: str = 'meta', agree: Optional[Callable[[paddle.Tensor], paddle.Tensor]] = None,
                       match_weight: str = 'teacher', moving_statistics: bool = False,
                       differentiable_m: bool = False) -> Tuple[BoardEntry, Union[float, paddle.Tensor]]:
        """``(teacher entry, m)``. ``'top1'``: the best entry, m = 0.5. ``'meta'``: the entry with
        the highest score, m = sigmoid(-score) of THAT entry (``match_weight 'last_entry'``: of the board's
        last entry, as the official code does); ``agree`` maps the scores to those every process decides on
        (rank 0's); ``moving_statistics``: see :meth:`score_slices`. ``differentiable_m`` (the official code):
        m is a 0-d tensor through which a loss reaches the meta layer and the student (its entry's forward
        kept; this process's own score), else a float with no gradient. One host synchronisation."""
        if board.is_empty:
            raise ValueError('cannot select a teacher from an empty board')
        if method == 'top1':
            return board.best(), 0.5
        if method != 'meta':
            raise ValueError(f"method must be 'meta' or 'top1', got {method!r}")
        if match_weight not in ('teacher', 'last_entry'):
            raise ValueError(f"match_weight must be 'teacher' or 'last_entry', got {match_weight!r}")
        inputs, labels = board.stacked()
        last = None
        if differentiable_m and moving_statistics and match_weight == 'last_entry':
            # the official selection: the last entry's forward (the one moving the statistics last) is the graph
            n = self.slice_size
            scores = self.score_slices(model, path, inputs[:-n], labels[:-n], True) if len(board) > 1 else None
            last = self._score(F.softmax(model(inputs[-n:].astype(self.meta_layer.weight.dtype), path), axis=-1),
                               labels[-n:].astype(self.meta_layer.weight.dtype))
            scores = last.detach() if scores is None else paddle.concat([scores, last.detach()])
        else:
            scores = self.score_slices(model, path, inputs, labels, moving_statistics)
        values = (scores if agree is None else agree(scores)).numpy()
        best = int(np.argmax(values))
        weighed = best if match_weight == 'teacher' else len(values) - 1
        if not differentiable_m:
            return board.entries[best], float(1. / (1. + np.exp(float(values[weighed]))))
        if last is None:   # the weighed entry's score again, with its graph (each slice's own statistics)
            entry = board.entries[weighed]
            dtype = self.meta_layer.weight.dtype
            last = self._score(F.softmax(self.local_forward(model, entry.inputs.astype(dtype), path), axis=-1),
                               entry.soft_labels.astype(dtype))
        return board.entries[best], F.sigmoid(-last).reshape([])

    def matching_weight(self, student_logits: paddle.Tensor, teacher_probs: paddle.Tensor) -> paddle.Tensor:
        """Scalar m(phi) = sigmoid(-meta_layer(flatten(softmax(student_logits) - teacher_probs)))
        for one slice ``[SLICE, classes]``; differentiable w.r.t. the meta layer and the logits."""
        self._check_slice(student_logits, teacher_probs)
        score = self._score(F.softmax(student_logits, axis=-1), teacher_probs)
        return F.sigmoid(-score).reshape([])

    def _entry_tensors(self, entry: BoardEntry) -> Tuple[paddle.Tensor, paddle.Tensor]:
        dtype = self.meta_layer.weight.dtype
        as_tensor = [v if isinstance(v, paddle.Tensor) else paddle.to_tensor(v)
                     for v in (entry.inputs, entry.soft_labels)]
        return as_tensor[0].astype(dtype), as_tensor[1].astype(dtype)

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
            logits, entry_logits = self.local_forward(model, x_train, path), self.local_forward(model, entry_x, path)
        loss, _ = self._train_loss(logits.detach(), teacher_probs, entry_logits.detach(), entry_labels)
        return _grads(loss, list(self.meta_layer.parameters()))

    def meta_gradient(self, model: nn.Layer, path: Sequence[Sequence[int]], teacher: BoardEntry,
                      teacher_probs: paddle.Tensor, x_train: paddle.Tensor, x_val: paddle.Tensor,
                      y_val: paddle.Tensor, student_lr: float, grad_clip: float = 1.0,
                      eps_scale: float = 1e-3, rule: Optional['MetaRule'] = None
                      ) -> Tuple[Tensors, Dict[str, paddle.Tensor]]:
        """dJ/dphi for J(phi) = CE_val(theta - xi * clip(grad_theta L_train(theta, phi))), xi = student_lr,
        over all path parameters theta, with only first derivatives. L_train = m * KD(student(x_train),
        teacher_probs), m = sigmoid(-meta(softmax(student(teacher.inputs)) - teacher.soft_labels)) the
        chosen ``teacher`` entry's matching score (docs/reference.md §5.3, 5.6).

        * G = grad_theta L_train, c = min(1, grad_clip / |G|), theta' = theta - xi c G;
        * v = grad CE_val(theta'); u = J_clip^T v = v if unclipped, else c (v - (v.G) G / |G|^2);
        * dJ/dphi = -xi d/dphi[u . grad_theta L_train] ~= -xi (grad_phi L_train(theta + eps u)
          - grad_phi L_train(theta - eps u)) / (2 eps), eps = max(eps_scale, 256 ulp * |theta|) / |u|:
          a step of norm 1e-2 measured up to 30% off the exact gradient on small hypernets, 1e-3 within 2%
          in float32; the floor keeps each weight's perturbation hundreds of float32 rounding steps wide
          on large paths. Both sides run with L_train's own dropout/drop-path masks, TF32 off.

        ``rule`` (:class:`MetaRule`) switches each part to the official code's. By default everything stays on
        the device (the clip is a device min); theta is restored exactly and BN running statistics are never
        touched (every forward uses each slice's own statistics, locally).
        Returns ``(grads per meta-layer parameter, {'val_loss', 'm', 'student_grad_norm'} as device scalars)``.
        """
        rule = rule or MetaRule()
        params = model.path_parameters(path)
        theta = [p.detach().clone() for p in params]
        entry_x, entry_labels = self._entry_tensors(rule.weighed or teacher)
        draws = ReplayableDraws()   # the masks of L_train's forwards, replayed for theta +- eps u
        theta_after = theta          # what the weights are left at: theta, or the official real step's result

        def student(x):   # the official forwards run in train mode and move the running statistics
            return model(x, path) if rule.moving_statistics else self.local_forward(model, x, path)
        with tf32_disabled():
            try:
                logits = student(x_train)
                if callable(teacher_probs):   # the official order: the teacher's forward after the student's
                    teacher_probs = teacher_probs()
                loss, m = self._train_loss(logits, teacher_probs, self.local_forward(model, entry_x, path),
                                           entry_labels)
                g = _grads(loss, params)
                g_norm = _sum_squares(g).sqrt()
                c = paddle.minimum(paddle.ones_like(g_norm), grad_clip / paddle.maximum(g_norm, paddle.full_like(
                    g_norm, 1e-30)))
                if rule.real_step is not None:   # the official: the student really takes its clipped step
                    rule.real_step(g)
                    theta_after = [p.detach().clone() for p in params]
                else:
                    with paddle.no_grad():
                        _assign(params, [t - student_lr * (c if rule.clip == 'differentiated' else 1.) * gi
                                         for t, gi in zip(theta, g)])
                val_loss = rule.val_loss(student(x_val), y_val)
                v = _grads(val_loss, params)
                if rule.real_step is None and rule.clip == 'differentiated':
                    clipped = (c < 1.).astype(g_norm.dtype)  # Jacobian of G -> G tau / |G|: c (I - G G^T / |G|^2)
                    proj = clipped * _dot(v, g) / paddle.maximum(g_norm * g_norm, paddle.full_like(g_norm, 1e-30))
                    u = [c * (vi - proj * gi) for vi, gi in zip(v, g)]
                else:
                    u = v
                if rule.chain == 'stem':   # the official chain rule runs through the first parameter only
                    u = [u[0]] + [paddle.zeros_like(ui) for ui in u[1:]]
                u_norm = _sum_squares(u).sqrt()
                eps = finite_difference_step(_sum_squares(theta).sqrt(), u_norm, eps_scale)
                with paddle.no_grad():
                    _assign(params, [t + eps * ui for t, ui in zip(theta, u)])
                with draws.replay():
                    plus = self._phi_grad(model, path, x_train, teacher_probs, entry_x, entry_labels)
                with paddle.no_grad():
                    _assign(params, [t - eps * ui for t, ui in zip(theta, u)])
                with draws.replay():
                    minus = self._phi_grad(model, path, x_train, teacher_probs, entry_x, entry_labels)
                nonzero = (u_norm > 0).astype(u_norm.dtype)
                grad_phi = [-student_lr * nonzero * (a - b) / (2 * eps) for a, b in zip(plus, minus)]
            finally:
                draws.done()
                with paddle.no_grad():
                    _assign(params, theta_after)
        return grad_phi, {'val_loss': val_loss.detach(), 'm': m.detach(), 'student_grad_norm': g_norm}

    def meta_step(self, model: nn.Layer, path: Sequence[Sequence[int]], teacher: BoardEntry,
                  teacher_probs: paddle.Tensor, x_train: paddle.Tensor, x_val: paddle.Tensor, y_val: paddle.Tensor,
                  student_lr: float, meta_lr: float, grad_clip: float = 1.0, eps_scale: float = 1e-3,
                  optimizer: Optional[paddle.optimizer.Optimizer] = None,
                  rule: Optional[MetaRule] = None) -> Dict[str, float]:
        """One meta-layer update from :meth:`meta_gradient`: the gradient is clipped to norm
        ``grad_clip``, then plain SGD at ``meta_lr`` (or ``optimizer``, which must hold only the
        meta layer's parameters). The model's weights and BN stats are left untouched (unless ``rule`` says
        otherwise, as the official update does).
        Returns ``{'meta_grad_norm' (before clipping), 'val_loss', 'm'}`` (one host synchronisation)."""
        grad_phi, info = self.meta_gradient(model, path, teacher, teacher_probs, x_train, x_val, y_val, student_lr,
                                            grad_clip=grad_clip, eps_scale=eps_scale, rule=rule)
        norm = _sum_squares(grad_phi).sqrt()
        scale = paddle.minimum(paddle.ones_like(norm), grad_clip / paddle.maximum(norm, paddle.full_like(norm, 1e-30)))
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
        values = paddle.stack([norm, info['val_loss'].astype(norm.dtype), info['m'].astype(norm.dtype),
                               info['student_grad_norm'].astype(norm.dtype)]).numpy()
        return {'meta_grad_norm': float(values[0]), 'val_loss': float(values[1]), 'm': float(values[2])}
