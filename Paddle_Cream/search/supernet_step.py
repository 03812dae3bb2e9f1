"""One supernet training iteration, Cream or SPOS (docs/reference.md §5, §9): the algorithm in one place.

What the host does per iteration is a fixed handful of ops per unit of the sampled path (gradients
zeroed, all-reduced, stepped and averaged on :class:`~pimm.utils.fused_storage.FusedUnits` storage)
and ONE device-to-host copy: an iteration's metrics (and, with ``PICK_METHOD meta``, the next
teacher's scores) are fetched together at the start of the next iteration, which then settles the
board admission the metrics decide. :meth:`SupernetStep.finish` settles the last one.
"""
import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn.functional as F

from pimm.utils.distributed import all_reduce_sum_, average_gradients_, broadcast_tensors, get_world_size, rank0_only
from ..models.hypernet import HyperNet
from .behaviour import SearchBehaviour
from .board import BoardEntry
from .meta_matching import MetaRule

__all__ = ['SearchSettings', 'SupernetStep', 'StepResult']


@dataclass
class SearchSettings:
    """The SUPERNET.* keys the step needs."""
    method: str = 'cream'            # 'cream' or 'spos'
    pick_method: str = 'meta'        # 'meta' or 'top1'
    meta_sta_epoch: int = 20
    update_iter: int = 200
    slice_size: int = 4
    meta_lr: float = 1e-4
    sample_from_board: bool = False  # HOW_TO_PROB teacher: the path sampler reads the board
    behaviour: SearchBehaviour = field(default_factory=SearchBehaviour)   # corrected or the official code's


@dataclass
class StepResult:
    """A settled iteration: loss and batch top-1 over all ranks, the path, whether the board took it."""
    loss: float
    top1: float
    path: List[List[int]]
    flops: float
    m: Optional[float]
    meta: Optional[Dict[str, float]]
    admitted: bool
    teacher: Optional[List[List[int]]]
    latency: Optional[float] = None        # the path's predicted ms (with a latency_fn)


@dataclass
class _Pending:
    """An iteration whose metrics are still on the device."""
    metrics: paddle.Tensor                 # [images, top-1 hits, sum of the ranks' mean losses]
    path: List[List[int]]
    flops: float
    m: Optional[float]
    meta: Optional[Dict[str, float]]
    teacher: Optional[List[List[int]]]
    candidate: Optional[List[paddle.Tensor]]   # its first slice and soft labels, when the board is open
    latency: Optional[float] = None
    shared: bool = False                       # candidate already replaced by rank 0's


class SupernetStep:
    """Sample a path, distil from a board teacher (Cream), update only that path, offer it to the board.

    Every rank samples the same path (same seed) and admits the same entry: the metrics are
    all-reduced and the stored slice is rank 0's, broadcast. ``optimizer`` is a
    :class:`~pimm.optim.FusedSGD` over the hypernetwork's units (or any pimm optimizer, stepping
    parameters per tensor); ``ema`` a :class:`~pimm.utils.ModelEma` (lazy per unit on fused storage);
    ``scaler`` a :class:`pimm.utils.amp.GradScaler` for float16 O1 training (board scoring and the meta update
    stay float32). ``latency_fn`` (a path's predicted milliseconds, e.g. ``PathLatency.predict``) gives
    every path its latency, which a board with ``cost='latency'`` admits by.
    """

    def __init__(self, hypernet: HyperNet, optimizer, sampler, settings: SearchSettings, ce_loss: Callable,
                 kd_loss: Callable, board=None, matcher=None, ema=None, scaler=None,
                 latency_fn: Optional[Callable[[List[List[int]]], float]] = None, meta_optimizer=None):
        if settings.method not in ('cream', 'spos'):
            raise ValueError(f"SUPERNET.METHOD must be 'cream' or 'spos', got '{settings.method}'")
        if settings.pick_method not in ('meta', 'top1'):
            raise ValueError(f"SUPERNET.PICK_METHOD must be 'meta' or 'top1', got '{settings.pick_method}'")
        self.hypernet, self.optimizer, self.sampler = hypernet, optimizer, sampler
        self.s, self.ce_loss, self.kd_loss = settings, ce_loss, kd_loss
        self.board, self.matcher, self.ema, self.scaler = board, matcher, ema, scaler
        self.latency_fn = latency_fn
        if settings.behaviour.meta_optimizer == 'main' and settings.method == 'cream' and meta_optimizer is None:
            raise ValueError('META_OPTIMIZER main needs the meta layer\'s optimizer (meta_optimizer)')
        self.meta_optimizer = meta_optimizer if settings.behaviour.meta_optimizer == 'main' else None
        self.fused = getattr(optimizer, 'fused', None)
        self._pending: Optional[_Pending] = None
        self._stepped_units: set = set()   # OFF_PATH momentum: units stepped since this process started

    def _meta_update_due(self, iteration: int, batch_idx: Optional[int]) -> bool:
        if self.s.behaviour.meta_schedule == 'per_epoch':   # the official rule, counted within the epoch
            index = iteration if batch_idx is None else batch_idx
            return index > 0 and index % self.s.update_iter == 0
        return (iteration + 1) % self.s.update_iter == 0

    def board_open(self, epoch: int) -> bool:
        """Whether paths are offered to the board (and taught by it) in ``epoch``."""
        return self.s.method == 'cream' and epoch > self.s.meta_sta_epoch and self.board is not None

    def __call__(self, x: paddle.Tensor, y: paddle.Tensor, epoch: int, iteration: int,
                 lr: float, batch_idx: Optional[int] = None) -> Optional[StepResult]:
        """Train one iteration (``iteration`` counted over the run, ``batch_idx`` within the epoch); returns
        the previous one, settled (None on an epoch's first call)."""
        s, board_open = self.s, self.board_open(epoch)
        # with PICK_BN running the board is scored after the admission (a candidate's forward would move the
        # running statistics), so the scoring cannot share the settling copy
        pipelined = (board_open and s.pick_method == 'meta' and not s.sample_from_board
                     and s.behaviour.pick_bn == 'per_slice' and s.behaviour.m_gradient == 'none'
                     and self._pending is not None and self._pending.candidate is not None)
        finished = None if pipelined else self.finish()
        path, flops = self.sampler.sample(self.board if s.method == 'cream' else None)
        meta_due = s.pick_method == 'meta' and self._meta_update_due(iteration, batch_idx)
        teacher, m = None, None
        if pipelined:
            finished, teacher, m = self._settle_and_pick(path)
        elif board_open and len(self.board):
            # before a meta update this pick only names the entry to match: m is taken again after it, so a
            # trained m's graph is not built here
            teacher, m = self._pick(path, differentiable=not meta_due)
        meta = None
        if teacher is not None and meta_due:
            meta = self.meta_update(x, y, path, lr, teacher)
            teacher, m = self._pick(path)  # the updated meta layer chooses this iteration's teacher
        latency = None if self.latency_fn is None else float(self.latency_fn(path))
        self._pending = self._train(x, y, path, flops, latency, teacher, m, meta, board_open)
        return finished

    def finish(self) -> Optional[StepResult]:
        """Settle the last iteration (its metrics and board admission); call at the end of an epoch."""
        if self._pending is None:
            return None
        pending, self._pending = self._pending, None
        return self._settled(pending, all_reduce_sum_(pending.metrics).numpy())

    # -- teacher choice and the board ---------------------------------------------------------------

    def _pick(self, path, differentiable: bool = True) -> Tuple[BoardEntry, float]:
        """The teacher for ``path`` and its m (a tensor in the graph with M_GRADIENT trained and
        ``differentiable``)."""
        b = self.s.behaviour
        return self.matcher.select_teacher(self.hypernet, path, self.board, self.s.pick_method,
                                           agree=lambda scores: all_reduce_sum_(rank0_only(scores)),
                                           match_weight=b.match_weight, moving_statistics=b.pick_bn == 'running',
                                           differentiable_m=differentiable and b.m_gradient == 'trained')

    def _candidate(self, pending: _Pending) -> List[paddle.Tensor]:
        if not pending.shared:  # every rank stores rank 0's slice (a collective: all ranks get here)
            broadcast_tensors(pending.candidate)
            pending.shared = True
        return pending.candidate

    def _settled(self, pending: _Pending, metrics: np.ndarray) -> StepResult:
        images, hits, loss_sum = (float(v) for v in metrics[:3])
        top1 = 100. * hits / max(images, 1.)
        admitted = False
        # an iteration whose loss is not finite (an AMP overflow the scaler skipped) offers nothing: its soft labels
        # may be NaN. The summed loss is the same on every rank, and so is the decision.
        if pending.candidate is not None and math.isfinite(loss_sum) and \
                self.board.would_admit(top1, pending.flops, pending.latency):
            admitted = self.board.admit(top1, pending.flops, pending.path, *self._candidate(pending),
                                        latency=pending.latency)
        return StepResult(loss=loss_sum / get_world_size(), top1=top1, path=pending.path, flops=pending.flops,
                          m=pending.m, meta=pending.meta, admitted=admitted, teacher=pending.teacher,
                          latency=pending.latency)

    def _settle_and_pick(self, path) -> Tuple[StepResult, BoardEntry, float]:
        """Score the board's entries and the pending candidate for ``path`` in one forward, fetch those
        scores with the pending metrics in ONE copy, settle the admission, pick the best-scoring entry."""
        pending, self._pending = self._pending, None
        before = self.board.entries
        inputs, labels = self._candidate(pending)
        if before:
            stacked = self.board.stacked()
            inputs, labels = paddle.concat([stacked[0], inputs]), paddle.concat([stacked[1], labels])
        scores = self.matcher.score_slices(self.hypernet, path, inputs, labels)
        # rank 0 decides the teacher: its scores reach every rank in the one all-reduce with the metrics (each
        # rank's own, differently rounded on other GPUs, could pick another teacher: other losses, or a hang
        # in the teacher's SyncBN collectives)
        shared = paddle.concat([pending.metrics.astype('float64'), rank0_only(scores.astype('float64'))])
        fetched = all_reduce_sum_(shared).numpy()
        result = self._settled(pending, fetched)
        score_of = {id(e): fetched[3 + i] for i, e in enumerate(before)}
        entries = self.board.entries
        values = np.array([score_of.get(id(e), fetched[-1]) for e in entries])  # the new entry: the candidate
        best = int(np.argmax(values))
        weighed = best if self.s.behaviour.match_weight == 'teacher' else len(values) - 1
        return result, entries[best], float(1. / (1. + np.exp(values[weighed])))

    # -- the update ---------------------------------------------------------------------------------

    def meta_update(self, x: paddle.Tensor, y: paddle.Tensor, path, lr: float,
                    entry: BoardEntry) -> Optional[Dict]:
        """The meta-matching network's step on this batch's first two slices, against ``entry``."""
        n, b = self.s.slice_size, self.s.behaviour
        if x.shape[0] < 2 * n:
            return None
        if b.meta_bn == 'running':   # the official forward: train mode, after the student's (rule below)
            def teacher_probs():
                with paddle.no_grad():
                    return F.softmax(self.hypernet(x[:n], entry.path), axis=-1)
        else:
            with paddle.no_grad():  # local batch statistics, running statistics untouched
                teacher_probs = F.softmax(self.matcher.local_forward(self.hypernet, x[:n], entry.path), axis=-1)
        rule = MetaRule(chain=b.meta_chain, clip=b.meta_clip, moving_statistics=b.meta_bn == 'running',
                        val_loss=self.ce_loss if b.meta_val_loss == 'train' else F.cross_entropy,
                        weighed=self.board.entries[-1] if b.match_weight == 'last_entry' else None)
        xi = lr
        if b.meta_step == 'official':   # plain SGD simulated at the meta layer's rate, then a real student step
            rule.real_step = lambda g: self._real_student_step(path, g)
            xi = self.meta_optimizer._param_groups[0]['lr'] if self.meta_optimizer is not None else self.s.meta_lr
        info = self.matcher.meta_step(self.hypernet, path, entry, teacher_probs, x[:n], x[n:2 * n], y[n:2 * n],
                                      student_lr=xi, meta_lr=self.s.meta_lr, optimizer=self.meta_optimizer, rule=rule)
        if self.meta_optimizer is not None and b.off_path == 'momentum':
            self._step_zero_gradients(sorted(self._stepped_units - set(self._units(path))))
        shared = list(self.matcher.parameters())   # one meta layer on every rank (and its momentum: rank 0's)
        if self.meta_optimizer is not None:
            shared += [v for _, state in sorted(self.meta_optimizer.state.items()) for v in state.values()
                       if isinstance(v, paddle.Tensor)]
        broadcast_tensors(shared)
        return info

    def _step_zero_gradients(self, units: Sequence[int]) -> None:
        """The official code's optimizer steps touch every unit that had a gradient once (OFF_PATH momentum)."""
        if units and self.fused is not None:
            self.fused.zero_grads(units)
            self.optimizer.step(units)

    def _real_student_step(self, path, grads: List[paddle.Tensor]) -> None:
        """META_STEP official: the student's step on the meta update's L_train gradients, clipped to norm 1
        (``clip_grad_norm_``), through the main optimizer (and every unit it steps), averaged over the ranks."""
        average_gradients_(grads)
        norm = paddle.add_n([(g * g).sum() for g in grads]).sqrt()
        coef = paddle.minimum(paddle.ones_like(norm), 1. / (norm + 1e-6))
        params = self.hypernet.path_parameters(path)
        units = self._step_units(path)
        self._zero_gradients(units)
        paddle.add_n([(p * (coef * g).detach()).sum() for p, g in zip(params, grads)]).backward()
        with self._only(units):
            self.optimizer.step()
        if self.fused is not None:
            self.fused.zero_grads(units)
        if self.meta_optimizer is not None and any(p.grad is not None for p in self.matcher.parameters()):
            self.meta_optimizer.clear_grad(set_to_zero=True)
            self.meta_optimizer.step()

    def _units(self, *paths) -> List[int]:
        return sorted({u for p in paths if p is not None for u in self.hypernet.path_units(p)})

    def _step_units(self, path) -> List[int]:
        """The units a step of ``path`` updates: its own, and with OFF_PATH momentum (the official code) every
        unit stepped since the process started, which its optimizer steps again on zero gradients."""
        units = self._units(path)
        if self.s.behaviour.off_path != 'momentum':
            return units
        self._stepped_units.update(units)
        return sorted(self._stepped_units)

    def _zero_gradients(self, units: Sequence[int]) -> None:
        """Zero what the next step of ``units`` reads: their fused gradients, or every parameter's (None when
        off-path units must not move: a None gradient is not stepped; zeros are, by momentum and weight decay)."""
        if self.fused is not None:
            self.fused.zero_grads(units)
        else:
            self.optimizer.clear_grad(set_to_zero=self.s.behaviour.off_path == 'momentum')

    def _only(self, units: Sequence[int]):
        """The optimizer restricted to ``units`` for one step (fused storage; per-tensor optimizers skip the
        parameters without a gradient by themselves)."""
        return self.optimizer.restricted_to(units) if self.fused is not None else contextlib.nullcontext()

    def _train(self, x, y, path, flops, latency: Optional[float], teacher: Optional[BoardEntry],
               m: Union[None, float, paddle.Tensor], meta, board_open: bool) -> _Pending:
        units = self._step_units(path)
        touched = sorted(set(units) | set(self._units(path, None if teacher is None else teacher.path)))
        if self.ema is not None:
            self.ema.catch_up(touched)
        self._zero_gradients(units)
        if self.meta_optimizer is not None:   # as the official main optimizer: zeroed, stepped once it had one
            self.meta_optimizer.clear_grad(set_to_zero=True)
        amp = self.scaler is not None
        with paddle.amp.auto_cast(enable=amp, level='O1'):
            logits = self.hypernet(x, path)
            teacher_logits = None
            if teacher is not None:
                with paddle.no_grad():
                    teacher_logits = self.hypernet(x, teacher.path)
                kd = self.kd_loss(logits, F.softmax(teacher_logits.astype('float32'), axis=-1))
                loss = (m * kd + (2. - m) * self.ce_loss(logits, y)) / 2.
            else:
                loss = self.ce_loss(logits, y)
        self._backward_and_step(loss, path, units, self._units(path))
        if self.ema is not None:
            self.ema.update(self.hypernet, touched)
        with paddle.no_grad():
            hits = (logits.argmax(-1) == y).astype('float32').sum()
            # summed over the ranks when the iteration is settled, in the same all-reduce as the teacher's scores
            metrics = paddle.stack([paddle.full([], y.shape[0], 'float32'), hits, loss.detach().astype('float32')])
            candidate = None
            if board_open:
                n = self.s.slice_size
                source = teacher_logits if teacher_logits is not None else logits
                candidate = [x[:n].detach().astype('float32').clone(),
                             F.softmax(source[:n].detach().astype('float32'), axis=-1)]
        if isinstance(m, paddle.Tensor):   # M_GRADIENT trained: its value, for the log (that mode fetches anyway)
            m = float(m.detach())
        return _Pending(metrics, path, flops, m, meta, None if teacher is None else teacher.path, candidate, latency)

    def _backward_and_step(self, loss: paddle.Tensor, path, units: Sequence[int], path_units: Sequence[int]) -> None:
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
        if self.fused is not None:   # the other stepped units' gradients are zero on every rank
            grads = [self.fused.grads[u] for u in path_units if self.fused.grads[u] is not None]
        else:
            grads = [p.grad for p in self.hypernet.path_parameters(path) if p.grad is not None]
        if self.meta_optimizer is not None:   # M_GRADIENT trained: the main loss reached the meta layer
            grads += [p.grad for p in self.matcher.parameters() if p.grad is not None]
        average_gradients_(grads)   # one collective over the path's gradients only
        with self._only(units):
            if self.scaler is None:
                self.optimizer.step()
            else:
                # unscales and checks this path's gradients only (stale ones of other units cannot mark the step
                # as an overflow), and skips an overflowed step: on fused storage on the device, without a copy to
                # the host. The averaged gradients make the decision the same on every rank.
                self.scaler.step(self.optimizer)
                self.scaler.update()
        if self.meta_optimizer is not None:
            self.meta_optimizer.step()
