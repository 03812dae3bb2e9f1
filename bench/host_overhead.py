"""Host-side cost of one Cream search iteration outside the network's forward/backward kernels.

On a GPU the kernels run asynchronously and what limits a fast device is the Python and dispatch work
per iteration. To see that work on a CPU, the hypernetwork is rebuilt with every tensor cut to ONE
element (same layers, units, tensors and ops; no arithmetic to speak of) and each phase of the
iteration is timed on it: EMA, optimizer, board bookkeeping and the device-to-host copies. Device-to-
host copies are counted with :class:`pimm.utils.host_copies.HostCopyCounter`, as the tests count them.

"before" is the previous implementation's per-iteration host work, reproduced op for op here (commit
019db57): EMA over the two full state dicts (3 ops a tensor), per-parameter SGD with the walk over all
parameters and the release of off-path gradients, the board's slice copies to the host and the upload
of all stored slices for scoring, a host copy for each metric and the teacher index. "after" calls the
library: ``FusedSGD`` and the lazy ``ModelEma`` on ``FusedUnits``, the device-resident board, the
``SupernetStep`` bookkeeping with one fetch per iteration.

:func:`measure_amp_step` times the float16 step's loss-scaler work (unscale and check, optimizer step,
scale update) on fused storage: "paddle" is what this port ran before (Paddle's ``GradScaler`` path: every
parameter of the optimizer's groups unscaled and checked, the overflow flag read on the host by the
optimizer, the step's gradients cleared after it); "device" is :class:`pimm.utils.amp.GradScaler` with
:class:`pimm.optim.FusedSGD` (the path's flat gradients in one check, the skip decided on the device).
A CPU Paddle disables a GradScaler, so both are built as on a GPU (tests/helpers/fake_gpu.py).
"""
import statistics
import time
from typing import Dict, List

import numpy as np
import paddle
import paddle.nn.functional as F

from pimm.optim import create_optimizer
from pimm.utils.host_copies import HostCopyCounter
from pimm.utils.model_ema import ModelEma
from Paddle_Cream.models.hypernet import HyperNet
from Paddle_Cream.search import PrioritizedBoard

__all__ = ['measure_host_overhead', 'measure_amp_step', 'one_element_replica']

SLICE, POOL = 4, 10


def one_element_replica(sta_num: List[int], num_classes: int) -> HyperNet:
    """The hypernetwork with each parameter and statistic replaced by a 1-element tensor of its kind."""
    net = HyperNet(sta_num, num_classes, resolution=224)
    for layer in net.sublayers(include_self=True):
        for name, p in list(layer._parameters.items()):
            if p is None:
                continue
            small = paddle.create_parameter([1], p.dtype, default_initializer=paddle.nn.initializer.Constant(0.5))
            small.stop_gradient = p.stop_gradient
            layer._parameters[name] = small
    return net


def _paths(net: HyperNet, count: int, seed: int):
    rng = np.random.RandomState(seed)
    return [[[0]] + [rng.randint(0, 6, n).tolist() for n in net.sta_num] + [[0]] for _ in range(count)]


def _fake_backward(params) -> None:
    paddle.add_n([p.sum() for p in params]).backward()   # a gradient for exactly these (not timed)


class _Before:
    """The previous implementation's host work per iteration (see the module docstring)."""

    def __init__(self, net: HyperNet):
        self.net = net
        self.opt = create_optimizer(net, opt='sgd', lr=0.1, weight_decay=1e-4, momentum=0.9)
        self.ema = ModelEma(net, decay=0.9998)
        self.entries: List[tuple] = []   # the board held its slices as host arrays

    def ema_update(self, i, path, teacher) -> None:
        d = 0.9998
        with paddle.no_grad():
            for e, m in zip(self.ema._module.state_dict().values(), self.net.state_dict().values()):
                e.scale_(d).add_(m * (1. - d))

    def optimizer(self, i, path, teacher) -> None:
        self.opt.step()
        keep = {id(p) for p in self.net.path_parameters(path)}
        for p in self.net.parameters():   # _release_off_path_grads
            if id(p) not in keep and p.grad is not None:
                p.clear_gradient(False)

    def prepare(self, path) -> None:
        self.opt.clear_grad(set_to_zero=False)
        _fake_backward(self.net.path_parameters(path))

    def board_work(self, i, logits, x) -> None:
        inputs = x[:SLICE].numpy()                                 # the slice copied to the host every step
        soft = F.softmax(logits[:SLICE], axis=-1).numpy()
        self.entries = (self.entries + [(np.array(inputs), np.array(soft))])[-POOL:]
        paddle.to_tensor(np.concatenate([e[0] for e in self.entries]))     # all slices uploaded to be scored
        paddle.to_tensor(np.concatenate([e[1] for e in self.entries]))

    def metrics(self, loss, logits, y, scores) -> None:
        float((logits.argmax(-1) == y).astype('float32').sum())   # the batch top-1
        float(loss)
        int(np.argmax(scores.numpy()))                             # the teacher index


class _After:
    def __init__(self, net: HyperNet):
        self.net = net
        self.opt = create_optimizer(net, opt='sgd', lr=0.1, weight_decay=1e-4, momentum=0.9, fused_units=net.units())
        self.ema = ModelEma(net, decay=0.9998, fused=self.opt.fused)
        self.board = PrioritizedBoard(POOL)

    def _touched(self, path, teacher):
        return sorted(set(self.net.path_units(path)) | set(self.net.path_units(teacher)))

    def ema_update(self, i, path, teacher) -> None:
        touched = self._touched(path, teacher)
        self.ema.catch_up(touched)
        self.ema.update(self.net, touched)

    def optimizer(self, i, path, teacher) -> None:
        with self.opt.restricted_to(self.net.path_units(path)):
            self.opt.step()

    def prepare(self, path) -> None:
        self.opt.fused.zero_grads(self.net.path_units(path))
        _fake_backward(self.net.path_parameters(path))

    def board_work(self, i, logits, x) -> None:
        candidate = [x[:SLICE].detach().clone(), F.softmax(logits[:SLICE].detach(), axis=-1)]
        top1 = 50. + (i % 7)
        if self.board.would_admit(top1, 10.):
            self.board.admit(top1, 10., [[0]], *candidate)
        self.board.stacked()

    def metrics(self, loss, logits, y, scores) -> None:
        hits = (logits.argmax(-1) == y).astype('float32').sum()
        metrics = paddle.stack([paddle.full([], y.shape[0], 'float32'), hits, loss.astype('float32')])
        fetched = paddle.concat([metrics, scores]).numpy()        # metrics and next teacher's scores: one copy
        int(np.argmax(fetched[3:]))


def measure_host_overhead(sta_num: List[int], num_classes: int, batch: int, image: int, one_element: bool = True,
                          iters: int = 20, repeats: int = 5) -> Dict[str, Dict[str, float]]:
    """``{'before': {phase: ms, 'device_to_host_copies': n}, 'after': {...}}`` for one iteration.

    ``one_element``: the 1-element replica (host work alone); else the real hypernetwork on this CPU,
    where the same phases also do their arithmetic (which a GPU does asynchronously)."""
    results = {}
    side_image = 1 if one_element else image
    x = paddle.randn([batch, 3, side_image, side_image])
    y = paddle.to_tensor(np.arange(batch) % num_classes, dtype='int64')
    logits = paddle.randn([batch, num_classes])
    loss, scores = logits.mean(), paddle.randn([POOL + 1])
    for name, cls in (('before', _Before), ('after', _After)):
        paddle.seed(0)
        net = one_element_replica(sta_num, num_classes) if one_element else HyperNet(sta_num, num_classes,
                                                                                       resolution=image)
        side = cls(net)
        paths, teachers = _paths(side.net, 64, 1), _paths(side.net, 64, 2)
        work = {'ema': lambda i: side.ema_update(i, paths[i % 64], teachers[i % 64]),
                'optimizer': lambda i: side.optimizer(i, paths[i % 64], teachers[i % 64]),
                'board': lambda i: side.board_work(i, logits, x),
                'syncs': lambda i: side.metrics(loss, logits, y, scores)}
        phases = {}
        for phase, fn in work.items():
            samples = []
            for r in range(repeats + 1):   # the first round warms up
                total = 0.
                for i in range(iters):
                    if phase == 'optimizer':
                        side.prepare(paths[(r * iters + i) % 64])  # the backward is the network's cost
                    start = time.perf_counter()
                    fn(r * iters + i)
                    total += time.perf_counter() - start
                samples.append(total * 1e3 / iters)
            phases[phase] = statistics.median(samples[1:])
        with HostCopyCounter() as counter:
            side.prepare(paths[0])
            for fn in work.values():
                fn(0)
        phases['device_to_host_copies'] = counter.count
        results[name] = phases
    return results


def _device_scaler():
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests', 'helpers'))
    from fake_gpu import built_as_on_gpu
    from pimm.utils.amp import GradScaler
    return built_as_on_gpu, GradScaler


def measure_amp_step(sta_num: List[int], num_classes: int, iters: int = 20,
                     repeats: int = 5) -> Dict[str, Dict[str, float]]:
    """``{'paddle': {'ms': .., 'device_to_host_copies': n}, 'device': {...}}``: the AMP part of one search step
    (after the backward) on the 1-element replica, median ms over ``repeats`` rounds of ``iters``."""
    built_as_on_gpu, GradScaler = _device_scaler()

    class PaddlePath(GradScaler):
        """As before: Paddle's unscale over every parameter and its step (the optimizer reads
        ``found_inf`` on the host), the scale rule decided on the host."""
        _unscale = paddle.amp.GradScaler._unscale
        step = paddle.amp.GradScaler.step

        def _update(self) -> None:
            if self._cache_found_inf:
                self._incr_count, self._decr_count = 0, self._decr_count + 1
                if self._decr_count == self._decr_every_n_nan_or_inf:
                    self._scale, self._decr_count = self._scale * self._decr_ratio, 0
            else:
                self._decr_count, self._incr_count = 0, self._incr_count + 1
                if self._incr_count == self._incr_every_n_steps:
                    self._scale, self._incr_count = self._scale * self._incr_ratio, 0

    results = {}
    for name, cls in (('paddle', PaddlePath), ('device', GradScaler)):
        paddle.seed(0)
        net = one_element_replica(sta_num, num_classes)
        opt = create_optimizer(net, opt='sgd', lr=0.1, weight_decay=1e-4, momentum=0.9, filter_bias_and_bn=True,
                               fused_units=net.units())
        scaler = built_as_on_gpu(cls, init_loss_scaling=1024)
        paths = _paths(net, 64, 1)

        def prepare(i):
            opt.fused.zero_grads(net.path_units(paths[i % 64]))
            _fake_backward(net.path_parameters(paths[i % 64]))

        def amp_step(i):
            units = net.path_units(paths[i % 64])
            with opt.restricted_to(units):
                scaler.step(opt)
                scaler.update()
            if name == 'paddle':
                opt.fused.zero_grads(units)

        samples = []
        for r in range(repeats + 1):   # the first round warms up
            total = 0.
            for i in range(iters):
                prepare(r * iters + i)
                start = time.perf_counter()
                amp_step(r * iters + i)
                total += time.perf_counter() - start
            samples.append(total * 1e3 / iters)
        prepare(0)
        with HostCopyCounter() as counter:
            amp_step(0)
        results[name] = {'ms': statistics.median(samples[1:]), 'device_to_host_copies': counter.count}
    return results
