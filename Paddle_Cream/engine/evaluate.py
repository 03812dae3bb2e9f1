"""Top-1/top-5/loss over a loader, every image counted once across processes.

A runner returning a tensor is scored on its device (the sums stay there until the end); one returning
a numpy array (the Paddle Inference predictor) is scored on the host.
"""
import time
from typing import Callable, Dict, Iterable, Union

import numpy as np
import paddle
import paddle.nn.functional as F
from tqdm import tqdm

from pimm.data import create_loader
from pimm.utils.distributed import all_reduce_max, all_reduce_sum

from .errors import UserError

__all__ = ['batch_metrics', 'device_batch_metrics', 'eval_loader', 'evaluate', 'require_scored']

Array = Union[np.ndarray, paddle.Tensor]
_SHOW_EVERY = 20  # batches between progress-bar accuracy updates (each one is a host synchronisation)


def eval_loader(cfg, dataset, input_size: int, batch_size: int, workers: int, distributed: bool = False):
    """The evaluation loader of ``test`` and ``predict``: the config's crop, interpolation and decoding."""
    return create_loader(dataset, input_size, batch_size, is_training=False, num_workers=workers,
                         distributed=distributed, crop_pct=cfg.DATASET.CROP_PCT,
                         interpolation=cfg.DATASET.INTERPOLATION, fast_decode=cfg.FAST_DECODE,
                         pin_memory=cfg.DATASET.PIN_MEM)


def batch_metrics(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[images, top1 hits, top5 hits, summed cross-entropy, skipped, non-finite]`` for one batch.

    Targets of -1 mark images skipped as corrupt: they are counted apart, not scored. ``non-finite``
    counts the scored images with a NaN or infinite logit (a result that is not one).
    """
    keep = targets >= 0
    skipped = int((~keep).sum())
    logits, targets = logits[keep].astype(np.float64), targets[keep]
    if len(targets) == 0:
        return np.array([0., 0., 0., 0., skipped, 0.])
    nonfinite = float((~np.isfinite(logits)).any(axis=1).sum())
    k = min(5, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    top1 = logits.argmax(axis=1) == targets
    top5 = (top == targets[:, None]).any(axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(targets)), targets].sum()
    return np.array([len(targets), top1.sum(), top5.sum(), loss, skipped, nonfinite], dtype=np.float64)


def device_batch_metrics(logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
    """:func:`batch_metrics` on the logits' device (float64, no host synchronisation, no dynamic shapes)."""
    targets = targets.reshape([-1]).astype('int64')
    keep = (targets >= 0).astype('float64')
    safe = paddle.clip(targets, min=0)
    logits = logits.astype('float64')
    k = min(5, logits.shape[1])
    top = paddle.topk(logits, k, axis=1)[1]
    top1 = (logits.argmax(axis=1) == safe).astype('float64') * keep  # the first of tied maxima, as numpy
    top5 = (top == safe.unsqueeze(1)).astype('float64').sum(axis=1) * keep
    nll = -paddle.take_along_axis(F.log_softmax(logits, axis=1), safe.unsqueeze(1), axis=1).reshape([-1]) * keep
    nonfinite = (~paddle.isfinite(logits)).any(axis=1).astype('float64') * keep
    return paddle.stack([keep.sum(), top1.sum(), top5.sum(), nll.sum(), (1. - keep).sum(), nonfinite.sum()])


def _show_running(bar, sums: np.ndarray) -> None:
    """The bar's postfix: top-1 and loss over every image scored so far (not the last batch's)."""
    if sums[0]:
        bar.set_postfix(top1=f'{100 * sums[1] / sums[0]:.2f}', loss=f'{sums[3] / sums[0]:.4f}', refresh=False)


def evaluate(run: Callable[[Array], Array], loader: Iterable, total_batches: int = 0,
             show_progress: bool = True, desc: str = 'test') -> Dict[str, float]:
    """Run ``run(images) -> logits`` over ``loader``; sums are all-reduced over processes. The progress bar
    shows the running top-1 and loss, ending on the returned ones."""
    host, device = np.zeros(6), None
    start = time.time()
    # driven by hand, not by iterating it: a bar iterated closes itself (its last display) before the final
    # figures could be set
    with tqdm(total=total_batches or None, desc=desc, disable=not show_progress, dynamic_ncols=True) as bar:
        for i, (images, targets) in enumerate(loader):
            logits = run(images)
            if isinstance(logits, paddle.Tensor):
                if not isinstance(targets, paddle.Tensor):
                    targets = paddle.to_tensor(np.asarray(targets))
                with paddle.no_grad():
                    sums = device_batch_metrics(logits, targets.to(logits.place))
                    device = sums if device is None else device + sums
            else:
                targets = np.asarray(targets.numpy() if hasattr(targets, 'numpy') else targets).reshape(-1)
                host += batch_metrics(logits, targets)
            bar.update()
            if show_progress and i % _SHOW_EVERY == 0:
                _show_running(bar, host + (0. if device is None else device.numpy()))
        sums = host + (0. if device is None else device.numpy())
        elapsed = time.time() - start
        sums = all_reduce_sum(sums)
        elapsed = all_reduce_max(elapsed)
        if show_progress:   # the last display: every image of every process, the figures returned below
            _show_running(bar, sums)
    images, hit1, hit5, loss, skipped, nonfinite = sums
    n = max(images, 1)
    return dict(images=int(images), top1=float(100 * hit1 / n), top5=float(100 * hit5 / n), loss=float(loss / n),
                skipped=int(skipped), nonfinite=int(nonfinite), seconds=float(elapsed),
                images_per_sec=float(images / max(elapsed, 1e-9)))


def require_scored(metrics: Dict[str, float], where: str) -> None:
    """A result that is not one is refused in one line: no image scored (all skipped as unreadable), or
    images whose logits are NaN or infinite (``where`` names the images' folder)."""
    if metrics['images'] == 0:
        raise UserError(f"no image of {where} could be scored ({metrics['skipped']} skipped as unreadable): "
                        f"nothing to report")
    if metrics['nonfinite']:
        raise UserError(f"{metrics['nonfinite']} of {metrics['images']} images of {where} gave NaN or infinite "
                        f"logits: the weights or INFERENCE runtime give no result; nothing written")
