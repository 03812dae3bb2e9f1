"""One supernet training iteration, Cream (SPEC 5) or SPOS (SPEC 9): the algorithm in one place."""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..engine.distributed import all_reduce_sum, broadcast_array, broadcast_parameters, get_world_size
from ..models.hypernet import HyperNet

__all__ = ['SearchSettings', 'SupernetStep', 'batch_top1']


@dataclass
class SearchSettings:
    """The SUPERNET.* keys the step needs."""
    method: str = 'cream'            # 'cream' or 'spos'
    pick_method: str = 'meta'        # 'meta' or 'top1'
    meta_sta_epoch: int = 20
    update_iter: int = 200
    slice_size: int = 4
    meta_lr: float = 1e-4


def batch_top1(logits: paddle.Tensor, target: paddle.Tensor) -> float:
    return float((logits.argmax(-1) == target).astype('float32').mean()) * 100.


def _release_off_path_grads(hypernet: HyperNet, on_path: Sequence[paddle.Tensor]) -> None:
    # DataParallel fills unused parameters with zero gradients; a zero gradient still moves
    # them through momentum and weight decay. None makes the optimizer skip them entirely.
    keep = {id(p) for p in on_path}
    for p in hypernet.parameters():
        if id(p) not in keep and p.grad is not None:
            p.clear_gradient(False)


class SupernetStep:
    """Sample a path, distil from a board teacher (Cream), update only that path, update the board.

    Every rank samples the same path (same seed) and admits the same entry: the
    batch top-1 is all-reduced and the stored slice is rank 0's, broadcast.
    """

    def __init__(self, model: nn.Layer, hypernet: HyperNet, optimizer, sampler, settings: SearchSettings,
                 ce_loss: Callable, kd_loss: Callable, board=None, matcher=None):
        if settings.method not in ('cream', 'spos'):
            raise ValueError(f"SUPERNET.METHOD must be 'cream' or 'spos', got '{settings.method}'")
        if settings.pick_method not in ('meta', 'top1'):
            raise ValueError(f"SUPERNET.PICK_METHOD must be 'meta' or 'top1', got '{settings.pick_method}'")
        self.model, self.hypernet, self.optimizer, self.sampler = model, hypernet, optimizer, sampler
        self.s, self.ce_loss, self.kd_loss = settings, ce_loss, kd_loss
        self.board, self.matcher = board, matcher

    def distilling(self, epoch: int) -> bool:
        return self.s.method == 'cream' and epoch > self.s.meta_sta_epoch and self.board is not None \
            and len(self.board) > 0

    def _soft_labels(self, x: paddle.Tensor, path) -> paddle.Tensor:
        with paddle.no_grad():
            return F.softmax(self.model(x, path), axis=-1)

    def meta_update(self, x: paddle.Tensor, y: paddle.Tensor, path, lr: float) -> Optional[Dict]:
        """The meta-matching network's step on this batch's first two slices."""
        n = self.s.slice_size
        if x.shape[0] < 2 * n:
            return None
        entry, _ = self.matcher.select_teacher(self.hypernet, path, self.board, 'meta')
        teacher_probs = self._soft_labels(x[:n], entry.path)
        info = self.matcher.meta_step(self.hypernet, path, entry, teacher_probs, x[:n], x[n:2 * n], y[n:2 * n],
                                      student_lr=lr, meta_lr=self.s.meta_lr)
        broadcast_parameters(self.matcher.parameters())   # one meta layer on every rank
        return info

    def __call__(self, x: paddle.Tensor, y: paddle.Tensor, epoch: int, iteration: int, lr: float) -> Dict:
        path, flops = self.sampler.sample(self.board if self.s.method == 'cream' else None)
        meta = None
        if (self.distilling(epoch) and self.s.pick_method == 'meta'
                and (iteration + 1) % self.s.update_iter == 0):
            meta = self.meta_update(x, y, path, lr)
        self.optimizer.clear_grad(set_to_zero=False)
        logits = self.model(x, path)
        teacher, m, teacher_logits = None, None, None
        if self.distilling(epoch):
            teacher, m = self.matcher.select_teacher(self.hypernet, path, self.board, self.s.pick_method)
            with paddle.no_grad():
                teacher_logits = self.model(x, teacher.path)
            kd = self.kd_loss(logits, F.softmax(teacher_logits, axis=-1))
            loss = (m * kd + (2. - m) * self.ce_loss(logits, y)) / 2.
        else:
            loss = self.ce_loss(logits, y)
        loss.backward()
        _release_off_path_grads(self.hypernet, self.hypernet.path_parameters(path))
        self.optimizer.step()

        n_img, hits = all_reduce_sum([y.shape[0], float((logits.argmax(-1) == y).astype('float32').sum())])
        top1 = 100. * hits / n_img
        loss_value = float(all_reduce_sum([float(loss)])[0]) / get_world_size()
        admitted = False
        if self.s.method == 'cream' and epoch > self.s.meta_sta_epoch and self.board is not None:
            admitted = self._update_board(x, logits, teacher_logits, top1, flops, path)
        return dict(loss=loss_value, top1=top1, path=path, flops=flops, m=m, meta=meta, admitted=admitted,
                    teacher=None if teacher is None else teacher.path)

    def _update_board(self, x, logits, teacher_logits, top1: float, flops: float, path) -> bool:
        n = self.s.slice_size
        source = teacher_logits if teacher_logits is not None else logits
        inputs = broadcast_array(x[:n].numpy())
        soft = broadcast_array(F.softmax(source[:n].detach(), axis=-1).numpy())
        return self.board.admit(top1, flops, path, inputs, soft)
