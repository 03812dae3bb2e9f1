"""Top-1/top-5/loss over a loader, every image counted once across processes."""
import time
from typing import Callable, Dict, Iterable

import numpy as np
from tqdm import tqdm

from .distributed import all_reduce_max, all_reduce_sum

__all__ = ['batch_metrics', 'evaluate']


def batch_metrics(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[images, top1 hits, top5 hits, summed cross-entropy, skipped]`` for one batch.

    Targets of -1 mark images skipped as corrupt: they are counted apart, not scored.
    """
    keep = targets >= 0
    skipped = int((~keep).sum())
    logits, targets = logits[keep].astype(np.float64), targets[keep]
    if len(targets) == 0:
        return np.array([0., 0., 0., 0., skipped])
    k = min(5, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    top1 = logits.argmax(axis=1) == targets
    top5 = (top == targets[:, None]).any(axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(targets)), targets].sum()
    return np.array([len(targets), top1.sum(), top5.sum(), loss, skipped], dtype=np.float64)


def evaluate(run: Callable[[np.ndarray], np.ndarray], loader: Iterable, total_batches: int = 0,
             show_progress: bool = True, desc: str = 'test') -> Dict[str, float]:
    """Run ``run(images) -> logits`` over ``loader``; sums are all-reduced over processes."""
    sums = np.zeros(5)
    start = time.time()
    bar = tqdm(loader, total=total_batches or None, desc=desc, disable=not show_progress, dynamic_ncols=True)
    for images, targets in bar:
        images = images.numpy() if hasattr(images, 'numpy') else images
        targets = np.asarray(targets.numpy() if hasattr(targets, 'numpy') else targets).reshape(-1)
        sums += batch_metrics(run(images), targets)
        if sums[0]:
            bar.set_postfix(top1=f'{100 * sums[1] / sums[0]:.2f}', refresh=False)
    elapsed = time.time() - start
    images, hit1, hit5, loss, skipped = all_reduce_sum(sums)
    elapsed = all_reduce_max(elapsed)
    n = max(images, 1)
    return dict(images=int(images), top1=float(100 * hit1 / n), top5=float(100 * hit5 / n), loss=float(loss / n),
                skipped=int(skipped), seconds=float(elapsed), images_per_sec=float(images / max(elapsed, 1e-9)))
