"""Kendall tau-b and Spearman rho in numpy (ties: tau-b; Spearman on average ranks), as scipy.stats."""
from typing import Sequence

import numpy as np

__all__ = ['kendall_tau', 'spearman_rho', 'average_ranks']


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - n1) (n0 - n2)); nan when a side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError('x and y must be 1-D and of equal length')
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    s = float((dx * dy).sum())                       # concordant - discordant (pairs tied in either count 0)
    untied_x, untied_y = float((dx != 0).sum()), float((dy != 0).sum())
    if untied_x == 0 or untied_y == 0:
        return float('nan')
    return s / np.sqrt(untied_x * untied_y)


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, tied values sharing their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind='mergesort')
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.
            start = end
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of the average ranks; nan when a side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    if len(rx) != len(ry):
        raise ValueError('x and y must be of equal length')
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float('nan') if denom == 0 else float((rx * ry).sum() / denom)
