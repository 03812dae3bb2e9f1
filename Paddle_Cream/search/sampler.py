"""Path sampling under a FLOPs budget, and a latency budget when one is given: Cream's per-layer choice
distributions (docs/reference.md §5, step 1) and the FLOPs-uniform sampler of the SPOS baseline (docs/reference.md §9).

A latency budget only filters the draws (no random number is spent on it): without one, a seed draws
exactly the paths it drew before latency budgets existed. Each sampler owns a ``np.random.RandomState``:
ranks built with the same seed draw the same paths, and ``state_dict``/``load_state_dict`` resume the sequence exactly.
"""
import functools
import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..models.search_space import CHOICES, NUM_SEARCHED_STAGES
from .board import PrioritizedBoard

__all__ = ['PathSampler', 'UniformFlopsSampler', 'BudgetError', 'HOW_TO_PROB', 'DEFAULT_PRE_PROB']

HOW_TO_PROB = ('even', 'pre_prob', 'teacher')
DEFAULT_PRE_PROB = (0.05, 0.2, 0.05, 0.5, 0.05, 0.15)
NUM_CHOICES = len(CHOICES)
FlopsFn = Callable[[List[List[int]]], float]
LatencyFn = Callable[[List[List[int]]], float]   # e.g. PathLatency.predict: milliseconds


class BudgetError(RuntimeError):
    """No path within the budget turned up in the draws allowed (the message names the budget)."""


def _check_prob(prob: Sequence[float], what: str) -> np.ndarray:
    """``prob`` normalised to sum 1, or ``ValueError`` unless it has 6 non-negative entries."""
    p = np.asarray(prob, dtype=np.float64)
    if p.shape != (NUM_CHOICES,) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f'{what} must be {NUM_CHOICES} non-negative numbers with a positive sum, got {prob!r}')
    return p / p.sum()


class _LayerCosts(NamedTuple):
    """One budgeted measure as a sum over layers: the all-0 path's value, each layer's change per choice
    ``[layers, 6]``, the budget, and the least / the most the layers from ``i`` on can still add."""
    base: float
    table: np.ndarray
    minimum: float
    maximum: float
    least: np.ndarray
    most: np.ndarray


def _suffix_sums(values: np.ndarray) -> np.ndarray:
    """``out[i] = values[i:].sum()``, with ``out[len(values)] = 0``."""
    return np.append(np.cumsum(values[::-1])[::-1], 0.)


class _BudgetedSampler:
    """Shared parts: the checked budgets and layer counts, the RNG, drawing one path.

    ``latency_fn`` (milliseconds of a path) with ``[latency_minimum, latency_maximum]``: a latency budget
    every path must also meet; None: none."""

    def __init__(self, sta_num: Sequence[int], flops_fn: FlopsFn, flops_minimum: float, flops_maximum: float,
                 seed: int, max_tries: int, latency_fn: Optional[LatencyFn] = None, latency_minimum: float = 0.,
                 latency_maximum: Optional[float] = None):
        if len(sta_num) != NUM_SEARCHED_STAGES or not all(isinstance(n, int) and n >= 1 for n in sta_num):
            raise ValueError(f'sta_num must be {NUM_SEARCHED_STAGES} positive layer counts, got {sta_num!r}')
        if not flops_minimum <= flops_maximum:
            raise ValueError(f'empty FLOPs budget [{flops_minimum}, {flops_maximum}]')
        if latency_fn is not None and not (latency_maximum is not None and math.isfinite(latency_maximum)
                                           and 0 <= latency_minimum <= latency_maximum):
            raise ValueError(f'a latency_fn needs a finite, non-empty latency budget, got [{latency_minimum}, '
                             f'{latency_maximum}] ms')
        if max_tries < 1:
            raise ValueError(f'max_tries must be positive, got {max_tries!r}')
        self.sta_num = list(sta_num)
        self.flops_fn = flops_fn
        self.flops_minimum, self.flops_maximum = float(flops_minimum), float(flops_maximum)
        self.latency_fn = latency_fn
        self.latency_minimum = float(latency_minimum)
        self.latency_maximum = None if latency_maximum is None else float(latency_maximum)
        self.max_tries = int(max_tries)
        self.rng = np.random.RandomState(seed)

    def _draw(self, prob: Optional[np.ndarray] = None) -> List[List[int]]:
        """One path, each searched layer independently from ``prob`` (uniform when None)."""
        choices = self.rng.choice(NUM_CHOICES, size=sum(self.sta_num), p=prob).tolist()
        path, start = [[0]], 0
        for n in self.sta_num:
            path.append(choices[start:start + n])
            start += n
        return path + [[0]]

    def _latency(self, path: List[List[int]]) -> Optional[float]:
        """The path's milliseconds (None without a latency budget)."""
        return None if self.latency_fn is None else float(self.latency_fn(path))

    def _in_budget(self, flops: float, latency: Optional[float] = None) -> bool:
        return (self.flops_minimum <= flops <= self.flops_maximum
                and (latency is None or self.latency_minimum <= latency <= self.latency_maximum))

    @functools.cached_property
    def _layer_costs(self) -> Optional[List[_LayerCosts]]:
        """Each budgeted measure (FLOPs, then latency) as :class:`_LayerCosts`; None when a measure is not a
        sum over layers (checked on every uniform path). Constants of the sampler: worked out at its first
        fallback, then kept."""
        base_path = [[0]] + [[0] * n for n in self.sta_num] + [[0]]
        positions = [(s + 1, i) for s, n in enumerate(self.sta_num) for i in range(n)]
        measures = [(self.flops_fn, self.flops_minimum, self.flops_maximum)]
        if self.latency_fn is not None:
            measures.append((self.latency_fn, self.latency_minimum, self.latency_maximum))
        costs = []
        for fn, low, high in measures:
            base = float(fn(base_path))
            table = np.zeros((len(positions), NUM_CHOICES))
            for row, (stage, layer) in enumerate(positions):
                for choice in range(1, NUM_CHOICES):
                    path = [list(p) for p in base_path]
                    path[stage][layer] = choice
                    table[row, choice] = float(fn(path)) - base
            for choice in range(1, NUM_CHOICES):   # a sum over layers predicts every uniform path
                uniform = [[0]] + [[choice] * n for n in self.sta_num] + [[0]]
                if not math.isclose(base + table[:, choice].sum(), float(fn(uniform)), rel_tol=1e-6, abs_tol=1e-9):
                    return None
            costs.append(_LayerCosts(base, table, low, high, _suffix_sums(table.min(axis=1)),
                                     _suffix_sums(table.max(axis=1))))
        return costs

    def _draw_within_budget(self, prob: Optional[np.ndarray]) -> Tuple[List[List[int]], float]:
        """When the draws keep missing the budget (a prior concentrated on paths outside it): the layers one
        by one, each from ``prob`` restricted to the choices that can still end within every budget (the
        rest at their cheapest / dearest); uniform over those when ``prob`` gives them no weight."""
        costs = self._layer_costs
        if costs is not None:
            for _ in range(self.max_tries):
                path = self._constrained_draw(costs, prob)
                if path is None:
                    break   # no path meets every budget at once
                flops = float(self.flops_fn(path))
                if self._in_budget(flops, self._latency(path)):
                    return path, flops
        raise self._budget_error(self.max_tries)

    def _constrained_draw(self, costs: List['_LayerCosts'], prob: Optional[np.ndarray]) -> Optional[List[List[int]]]:
        totals = [c.base for c in costs]
        choices = []
        for i in range(costs[0].table.shape[0]):
            ok = np.ones(NUM_CHOICES, dtype=bool)
            for total, c in zip(totals, costs):
                after = total + c.table[i]
                ok &= (after + c.least[i + 1] <= c.maximum) & (after + c.most[i + 1] >= c.minimum)
            if not ok.any():
                return None
            weights = (np.full(NUM_CHOICES, 1.) if prob is None else np.asarray(prob, dtype=np.float64)) * ok
            weights = weights if weights.sum() > 0 else ok.astype(np.float64)
            choice = int(self.rng.choice(NUM_CHOICES, p=weights / weights.sum()))
            choices.append(choice)
            totals = [total + c.table[i, choice] for total, c in zip(totals, costs)]
        path, start = [[0]], 0
        for n in self.sta_num:
            path.append(choices[start:start + n])
            start += n
        return path + [[0]]

    def _budget_error(self, tries: int) -> BudgetError:
        latency = ('' if self.latency_fn is None else
                   f' and the latency budget [{self.latency_minimum}, {self.latency_maximum}] ms')
        return BudgetError(f'no path within the FLOPs budget [{self.flops_minimum}, {self.flops_maximum}] MFLOPs'
                           f'{latency} after {tries} draws (sta_num {self.sta_num})')

    def state_dict(self) -> Dict[str, Any]:
        """The RNG state as plain values and a numpy array (checkpoint friendly)."""
        name, keys, pos, has_gauss, cached = self.rng.get_state()
        return {'rng_algorithm': name, 'rng_keys': keys.copy(), 'rng_pos': int(pos),
                'rng_has_gauss': int(has_gauss), 'rng_cached_gaussian': float(cached)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Resume the RNG exactly where :meth:`state_dict` left it."""
        self.rng.set_state((state['rng_algorithm'], np.asarray(state['rng_keys'], dtype=np.uint32),
                            int(state['rng_pos']), int(state['rng_has_gauss']), float(state['rng_cached_gaussian'])))


class PathSampler(_BudgetedSampler):
    """Cream's sampler: every searched layer drawn from a probability vector over the 6 choices,
    re-drawn until the path's FLOPs (``flops_fn``, MFLOPs) lie in ``[flops_minimum, flops_maximum]``
    (and, with a ``latency_fn``, its milliseconds in ``[latency_minimum, latency_maximum]``). After
    ``max_tries`` misses (a prior that rarely meets a tight budget) the layers are drawn one by one from the
    same vector restricted to the choices whose remaining layers can still reach the budgets (judged from their
    least and most, so a budget narrower than the steps between the layers' costs can be missed although a
    path meets it exactly); :class:`BudgetError` when those draws also miss.

    ``how_to_prob``: ``'even'`` (uniform), ``'pre_prob'`` (``pre_prob``, normalised) or
    ``'teacher'`` (the board's choice frequencies, uniform while it is empty).
    """

    def __init__(self, sta_num: Sequence[int], flops_fn: FlopsFn, flops_minimum: float, flops_maximum: float,
                 how_to_prob: str = 'even', pre_prob: Sequence[float] = DEFAULT_PRE_PROB, seed: int = 0,
                 max_tries: int = 1000, latency_fn: Optional[LatencyFn] = None, latency_minimum: float = 0.,
                 latency_maximum: Optional[float] = None):
        super().__init__(sta_num, flops_fn, flops_minimum, flops_maximum, seed, max_tries, latency_fn,
                         latency_minimum, latency_maximum)
        if how_to_prob not in HOW_TO_PROB:
            raise ValueError(f'how_to_prob must be one of {HOW_TO_PROB}, got {how_to_prob!r}')
        self.how_to_prob = how_to_prob
        self.pre_prob = _check_prob(pre_prob, 'pre_prob')

    def choice_prob(self, board: Optional[PrioritizedBoard] = None) -> np.ndarray:
        """The probability vector the next draw uses (``board`` matters only for 'teacher')."""
        if self.how_to_prob == 'pre_prob':
            return self.pre_prob
        if self.how_to_prob == 'teacher' and board is not None and not board.is_empty:
            return _check_prob(board.choice_frequencies(NUM_CHOICES), 'board choice frequencies')
        return np.full(NUM_CHOICES, 1. / NUM_CHOICES)

    def sample(self, board: Optional[PrioritizedBoard] = None) -> Tuple[List[List[int]], float]:
        """``(path, flops)`` of a path within the budget; :class:`BudgetError` after ``max_tries`` misses."""
        prob = self.choice_prob(board)
        for _ in range(self.max_tries):
            path = self._draw(prob)
            flops = float(self.flops_fn(path))
            if self._in_budget(flops, self._latency(path)):
                return path, flops
        return self._draw_within_budget(prob)


class UniformFlopsSampler(_BudgetedSampler):
    """The SPOS baseline's FLOPs-uniform sampler: each call picks one of ``num_bins`` equal FLOPs
    bins inside the budget uniformly, then draws uniform paths until one falls in that bin; after
    ``max_misses`` misses it takes the next path within the whole budget (``RuntimeError`` if none
    appears in ``max_tries`` further draws). The official code then took any path, even one
    outside the budget; here the budget always holds, as the issue asks (re-draw outside it).

    With a latency budget (``latency_fn``) the bins split the latency budget instead: the search then
    aims at latency, and a latency-only search has no FLOPs range to split; FLOPs must still fit."""

    def __init__(self, sta_num: Sequence[int], flops_fn: FlopsFn, flops_minimum: float, flops_maximum: float,
                 num_bins: int = 7, max_misses: int = 500, seed: int = 0, max_tries: int = 1000,
                 latency_fn: Optional[LatencyFn] = None, latency_minimum: float = 0.,
                 latency_maximum: Optional[float] = None):
        super().__init__(sta_num, flops_fn, flops_minimum, flops_maximum, seed, max_tries, latency_fn,
                         latency_minimum, latency_maximum)
        if num_bins < 1:
            raise ValueError(f'num_bins must be positive, got {num_bins!r}')
        self.num_bins, self.max_misses = int(num_bins), int(max_misses)
        binned = (self.flops_minimum, self.flops_maximum) if latency_fn is None else (self.latency_minimum,
                                                                                      self.latency_maximum)
        if not all(map(math.isfinite, binned)):
            raise ValueError(f'the bins need a finite FLOPs budget (or a latency budget), got {list(binned)}')
        self.bin_edges = np.linspace(*binned, self.num_bins + 1)

    def sample(self, board: Optional[PrioritizedBoard] = None) -> Tuple[List[List[int]], float]:
        """``(path, flops)``; ``board`` is ignored (same call signature as :class:`PathSampler`)."""
        b = self.rng.randint(self.num_bins)
        low, high = self.bin_edges[b], self.bin_edges[b + 1]
        for _ in range(self.max_misses):
            path = self._draw()
            flops, latency = float(self.flops_fn(path)), self._latency(path)
            if low <= (flops if latency is None else latency) <= high and self._in_budget(flops, latency):
                return path, flops
        for _ in range(self.max_tries):
            path = self._draw()
            flops = float(self.flops_fn(path))
            if self._in_budget(flops, self._latency(path)):
                return path, flops
        return self._draw_within_budget(None)
