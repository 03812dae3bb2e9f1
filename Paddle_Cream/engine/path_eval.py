"""Scoring one path of a trained hypernetwork, as SPOS does (docs/reference.md §9), shared by ``evolve`` and ``rank``.

Before a path is scored its BatchNorm statistics are recomputed: every BN layer's running mean is reset
to 0 and variance to 1, then ``EVOLVE.BN_BATCHES`` training batches go through the path in train mode
without gradients. The running statistics are the plain average over those batches (cumulative
averaging, as SPOS sets PyTorch's momentum to None): before batch ``i`` (1-based) Paddle's momentum is
set to ``(i - 1) / i``, so ``running = (i-1)/i * running + 1/i * batch``. The path is then scored (top-1)
in eval mode on ``EVOLVE.EVAL_BATCHES`` validation batches, by the runtime ``INFERENCE`` names
(:mod:`pimm.inference`): an exported runtime scores the path's stand-alone network
(``HyperNet.extract_child``, exported per path) after its logits were checked against dygraph's on the
first batch. ``auto`` scores the first path both ways, dygraph and the exported runtime the runner picks
(export included), and keeps the faster for the rest of the run: at small scale exporting a network
per path costs more than it saves.

Both sets are fixed so a score is reproducible: a seeded random subset of the training images (at most
``BN_BATCHES * DATASET.BATCH_SIZE``) and of the validation images (at most ``EVAL_BATCHES *
EVAL_BATCH_SIZE``; the whole set when smaller), both with the evaluation transform (resize + centre crop,
no augmentation), visited in the same order every time.
"""
import math
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from pimm.data import DatasetError, ImageDataset, create_loader
from pimm.inference import create_runner

from ..models.hypernet import HyperNet
from .demo_data import prepare_demo_data
from .errors import UserError, require_file, require_inference
from .evaluate import evaluate
from .train_state import find_resume_checkpoint, load_train_state

__all__ = ['load_search_checkpoint', 'bn_loader', 'fixed_loaders', 'PathEvaluator', 'check_path_eval_inputs',
           'flops_limit']


def check_path_eval_inputs(cfg, mode: str) -> Dict:
    """RESUME_PATH must be a search checkpoint; returns it loaded (one-line UserError otherwise).

    Without RESUME_PATH the newest search checkpoint under SAVE_PATH is taken (set in ``cfg``, so the
    run's saved config and log name it).
    """
    if not cfg.RESUME_PATH:
        newest = find_resume_checkpoint(cfg.SAVE_PATH, None)
        if newest is None:
            raise UserError(f'{mode} needs RESUME_PATH: the checkpoint-last.pdparams of a tools/main.py train run '
                            f"(none found in '{cfg.SAVE_PATH}')")
        cfg.set('RESUME_PATH', newest)
    require_file(cfg.RESUME_PATH, 'RESUME_PATH')
    if cfg.NUM_GPU > 1:
        raise UserError(f'{mode} runs in one process: set NUM_GPU 1')
    require_inference(cfg.INFERENCE)
    from .search_setup import check_data_folders
    check_data_folders(cfg)
    return load_train_state(cfg.RESUME_PATH)


def flops_limit(cfg) -> float:
    """EVOLVE.FLOPS_LIMIT (MFLOPs), None meaning SUPERNET.FLOPS_MAXIMUM; infinite when that is 0 (a search
    under a latency budget alone has no FLOPs budget)."""
    limit = cfg.EVOLVE.FLOPS_LIMIT
    limit = float(cfg.SUPERNET.FLOPS_MAXIMUM if limit is None else limit)
    return limit if limit > 0 else math.inf


def load_search_checkpoint(cfg, path: str):
    """``(hypernet with the checkpoint's weights in eval mode, the checkpoint's search identity)``; every
    weight's key and shape must fit."""
    from .search_setup import check_weights
    state = load_train_state(path)
    ident = state['search']
    hypernet = HyperNet(list(ident['sta_num']), int(ident['num_classes']), global_pool=cfg.NET.GP,
                        resolution=int(ident['image_size']))
    check_weights(hypernet, state['state_dict'], path)
    hypernet.set_state_dict(state['state_dict'])
    hypernet.eval()
    return hypernet, ident


def _subset(dataset: ImageDataset, count: int, seed: int) -> ImageDataset:
    if count < len(dataset):
        keep = np.sort(np.random.RandomState(seed).permutation(len(dataset))[:count])
        dataset.samples = [dataset.samples[i] for i in keep]
    return dataset


def _split(cfg, split: str, class_to_idx=None) -> ImageDataset:
    try:
        return ImageDataset(os.path.join(cfg.DATA_DIR, split), class_to_idx=class_to_idx)
    except DatasetError as e:
        raise UserError(str(e)) from None


def _eval_settings(cfg) -> Dict:
    return dict(is_training=False, num_workers=cfg.WORKERS, crop_pct=cfg.DATASET.CROP_PCT,
                interpolation=cfg.DATASET.INTERPOLATION, pin_memory=cfg.DATASET.PIN_MEM)


def bn_loader(cfg, image_size: int):
    """The BN recalibration loader: ``EVOLVE.BN_BATCHES`` batches of a fixed training subset, evaluation
    transform, fixed order."""
    prepare_demo_data(cfg)
    bs = cfg.DATASET.BATCH_SIZE
    train = _subset(_split(cfg, cfg.DATASET.TRAIN_SPLIT), cfg.EVOLVE.BN_BATCHES * bs, cfg.SEED)
    # a last partial batch is dropped from the BN set unless it is the only one
    return create_loader(train, image_size, bs, drop_last=len(train) >= bs, **_eval_settings(cfg))


def fixed_loaders(cfg, image_size: int):
    """(BN recalibration loader, scoring loader): fixed subsets, evaluation transform, fixed order."""
    bn = bn_loader(cfg, image_size)
    val_bs = cfg.EVOLVE.EVAL_BATCH_SIZE
    val = _split(cfg, cfg.DATASET.VAL_SPLIT, class_to_idx=bn.dataset.class_to_idx)
    val = _subset(val, cfg.EVOLVE.EVAL_BATCHES * val_bs, cfg.SEED + 1)
    return bn, create_loader(val, image_size, val_bs, **_eval_settings(cfg))


def _bn_layers(net: nn.Layer) -> List[nn.Layer]:
    return [m for m in net.sublayers(include_self=True) if isinstance(m, nn.layer.norm._BatchNormBase)]


class PathEvaluator:
    """``score(path) -> {'top1', 'top5', 'loss', ...}`` after recomputing BN statistics for ``path``;
    ``score(path, keep_statistics=True)`` puts the supernet's running statistics back afterwards.

    ``inference``: the runtime that scores (see the module doc); ``threads`` its CPU threads; ``log``
    receives its warnings and, with ``auto``, the one line saying which way scores."""

    def __init__(self, hypernet: HyperNet, bn_loader, val_loader, inference: str = 'dygraph', threads: int = 0,
                 log: Optional[Callable[[str], None]] = None):
        self.hypernet, self.bn_loader, self.val_loader = hypernet, bn_loader, val_loader
        self.bns = _bn_layers(hypernet)
        on_gpu = 'gpu' in paddle.device.get_device()
        self.inference = 'dygraph' if inference == 'auto' and on_gpu else inference
        self.threads, self.log = threads, log or (lambda msg: None)

    def recalibrate(self, path: Sequence[Sequence[int]]) -> None:
        momenta = [bn._momentum for bn in self.bns]
        for bn in self.bns:
            bn._mean.set_value(paddle.zeros_like(bn._mean))
            bn._variance.set_value(paddle.ones_like(bn._variance))
        self.hypernet.train()
        try:
            with paddle.no_grad():
                for i, (images, _) in enumerate(self.bn_loader, start=1):
                    for bn in self.bns:
                        bn._momentum = (i - 1.) / i
                    self.hypernet(images if isinstance(images, paddle.Tensor) else paddle.to_tensor(images), path)
        finally:
            for bn, m in zip(self.bns, momenta):
                bn._momentum = m
            self.hypernet.eval()

    def score(self, path: Sequence[Sequence[int]], keep_statistics: bool = False) -> Dict[str, float]:
        saved = [(bn._mean.clone(), bn._variance.clone()) for bn in self.bns] if keep_statistics else []
        try:
            return self._recalibrate_and_score(path)
        finally:
            for bn, (mean, variance) in zip(self.bns, saved):
                bn._mean.set_value(mean)
                bn._variance.set_value(variance)

    def _recalibrate_and_score(self, path: Sequence[Sequence[int]]) -> Dict[str, float]:
        self.recalibrate(path)
        if self.inference == 'dygraph':
            return self._score_dygraph(path)
        if self.inference != 'auto':
            return self._score_exported(path, self.inference)[0]
        start = time.perf_counter()
        metrics = self._score_dygraph(path)
        eager = time.perf_counter() - start
        start = time.perf_counter()
        _, runtime = self._score_exported(path, 'auto')
        exported = time.perf_counter() - start
        self.inference = runtime if exported < eager else 'dygraph'
        self.log(f'path scoring: {self.inference} (first path: dygraph {eager:.1f} s, {runtime} {exported:.1f} s '
                 f'with its export)')
        return metrics

    def _score_dygraph(self, path: Sequence[Sequence[int]]) -> Dict[str, float]:
        def run(images):
            with paddle.no_grad():
                return self.hypernet(images if isinstance(images, paddle.Tensor) else paddle.to_tensor(images), path)
        return evaluate(run, self.val_loader, len(self.val_loader), show_progress=False)

    def _score_exported(self, path: Sequence[Sequence[int]], kind: str):
        """``(metrics, the runtime that served)`` with the path's stand-alone network exported."""
        child = self.hypernet.extract_child(path)
        def warnings_only(msg: str) -> None:   # not the choice line of every path
            if msg.startswith('warning:'):
                self.log(msg)
        runner = create_runner(child, self.hypernet.resolution, kind, self.threads, warnings_only)
        try:
            return evaluate(runner, self.val_loader, len(self.val_loader), show_progress=False), runner.name
        finally:
            runner.close()
