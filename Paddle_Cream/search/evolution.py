"""The SPOS evolutionary search over paths under a FLOPs limit (docs/reference.md §9), and optionally a limit
on the latency a table predicts.

Population ``population`` (50), keep the best ``top_k`` (10) ever evaluated, each generation
``mutation_num`` (25) children by mutation (every searched layer re-drawn with probability
``mutation_prob``, 0.1) and ``crossover_num`` (25) by layer-wise crossover of two top-k parents, the
rest of the population drawn at random; ``generations`` (20) generations. Only legal candidates
(never evaluated before, within ``[flops_minimum, flops_limit]``, and with a ``latency_limit`` predicted
at most that many milliseconds) are evaluated, each exactly once;
the winner is the best path ever evaluated. Everything random comes from one
``np.random.RandomState(seed)``: a seed and a deterministic score function give the same search.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..models.search_space import CHOICES, NUM_SEARCHED_STAGES

__all__ = ['EvolutionSearch']

NUM_CHOICES = len(CHOICES)
Path = List[List[int]]
Key = Tuple[Tuple[int, ...], ...]


def _key(path: Sequence[Sequence[int]]) -> Key:
    return tuple(tuple(int(c) for c in stage) for stage in path)


def _path(key: Key) -> Path:
    return [list(stage) for stage in key]


class EvolutionSearch:
    """``run(score_fn) -> (best_path, best_score, history)``; higher scores are better.

    ``flops_fn(path)`` gives MFLOPs, ``latency_fn(path)`` (optional) predicted milliseconds, legal up to
    ``latency_limit`` (None: recorded only); ``history`` has one entry per generation: ``generation``,
    ``evaluated`` (new candidates scored), ``best_top1``/``mean_top1`` of that generation,
    ``best_so_far`` and the current ``top_k`` (paths, scores, FLOPs, and ``latency_ms`` with a
    ``latency_fn``). Checking legality draws nothing: without a latency limit the search is the same."""

    def __init__(self, sta_num: Sequence[int], flops_fn: Callable[[Path], float], flops_limit: float,
                 population: int = 50, top_k: int = 10, mutation_prob: float = 0.1, mutation_num: int = 25,
                 crossover_num: int = 25, generations: int = 20, flops_minimum: float = 0., seed: int = 0,
                 max_tries_factor: int = 10, latency_fn: Optional[Callable[[Path], float]] = None,
                 latency_limit: Optional[float] = None):
        if len(sta_num) != NUM_SEARCHED_STAGES or not all(isinstance(n, int) and n >= 1 for n in sta_num):
            raise ValueError(f'sta_num must be {NUM_SEARCHED_STAGES} positive layer counts, got {sta_num!r}')
        if population < 1 or top_k < 1 or generations < 1 or mutation_num < 0 or crossover_num < 0:
            raise ValueError('population, top_k and generations must be at least 1, mutation_num and '
                             'crossover_num at least 0')
        if not 0. <= mutation_prob <= 1.:
            raise ValueError(f'mutation_prob must be in [0, 1], got {mutation_prob}')
        if not flops_minimum <= flops_limit:
            raise ValueError(f'empty FLOPs range [{flops_minimum}, {flops_limit}]')
        if latency_limit is not None and latency_fn is None:
            raise ValueError('a latency_limit needs a latency_fn')
        self.sta_num = list(sta_num)
        self.flops_fn = flops_fn
        self.flops_limit, self.flops_minimum = float(flops_limit), float(flops_minimum)
        self.population, self.top_k = int(population), int(top_k)
        self.mutation_prob = float(mutation_prob)
        self.mutation_num, self.crossover_num = int(mutation_num), int(crossover_num)
        self.generations = int(generations)
        self.max_tries_factor = int(max_tries_factor)
        self.rng = np.random.RandomState(seed)
        self.scores: Dict[Key, float] = {}      # every evaluated candidate, in evaluation order
        self.flops: Dict[Key, float] = {}
        self.latency_fn = latency_fn
        self.latency_limit = None if latency_limit is None else float(latency_limit)
        self.latency: Dict[Key, float] = {}

    # ---- candidates -------------------------------------------------------------------------------
    def _random_key(self) -> Key:
        return ((0,),) + tuple(tuple(self.rng.randint(NUM_CHOICES, size=n).tolist()) for n in self.sta_num) + ((0,),)

    @staticmethod
    def _cached(cache: Dict[Key, float], fn: Callable[[Path], float], key: Key) -> float:
        if key not in cache:
            cache[key] = float(fn(_path(key)))
        return cache[key]

    def _flops(self, key: Key) -> float:
        return self._cached(self.flops, self.flops_fn, key)

    def _latency(self, key: Key) -> float:
        return self._cached(self.latency, self.latency_fn, key)

    def is_legal(self, key: Key, pending=()) -> bool:
        """Never evaluated (nor already chosen for this generation), within the FLOPs range and the
        latency limit."""
        if key in self.scores or key in pending:
            return False
        if not self.flops_minimum <= self._flops(key) <= self.flops_limit:
            return False
        return self.latency_limit is None or self._latency(key) <= self.latency_limit

    def _limits(self) -> str:
        latency = '' if self.latency_limit is None else f' and the latency limit {self.latency_limit} ms'
        return f'the FLOPs range [{self.flops_minimum}, {self.flops_limit}] MFLOPs{latency}'

    def _costs(self, key: Key) -> Dict[str, float]:
        """FLOPs and, with a latency_fn, predicted milliseconds of ``key``."""
        costs = dict(flops=self._flops(key))
        if self.latency_fn is not None:
            costs['latency_ms'] = self._latency(key)
        return costs

    def _collect(self, make: Callable[[], Optional[Key]], num: int, pending: List[Key]) -> int:
        """Add up to ``num`` legal candidates from ``make`` to ``pending`` (``num * max_tries_factor``
        tries at most, as SPOS does); returns how many were added."""
        added, tries = 0, 0
        while added < num and tries < num * self.max_tries_factor:
            tries += 1
            key = make()
            if key is not None and self.is_legal(key, pending):
                pending.append(key)
                added += 1
        return added

    def _mutate(self, parents: List[Key]) -> Key:
        parent = parents[self.rng.randint(len(parents))]
        out = [parent[0]]
        for stage in parent[1:-1]:
            redraw = self.rng.rand(len(stage)) < self.mutation_prob
            new = self.rng.randint(NUM_CHOICES, size=len(stage))
            out.append(tuple(int(n) if r else c for c, r, n in zip(stage, redraw, new)))
        return tuple(out) + (parent[-1],)

    def _crossover(self, parents: List[Key]) -> Optional[Key]:
        if len(parents) < 2:
            return None
        i, j = self.rng.choice(len(parents), size=2, replace=False)
        a, b = parents[i], parents[j]
        out = [a[0]]
        for sa, sb in zip(a[1:-1], b[1:-1]):
            pick = self.rng.rand(len(sa)) < 0.5
            out.append(tuple(x if p else y for x, y, p in zip(sa, sb, pick)))
        return tuple(out) + (a[-1],)

    def top(self, k: Optional[int] = None) -> List[Key]:
        """The best ``k`` (top_k) paths evaluated so far; ties keep evaluation order."""
        ranked = sorted(self.scores, key=lambda key: -self.scores[key])  # stable sort
        return ranked[:self.top_k if k is None else k]

    # ---- the search -------------------------------------------------------------------------------
    def run(self, score_fn: Callable[[Path], float], log: Optional[Callable[[str], None]] = None
            ) -> Tuple[Path, float, List[Dict]]:
        history: List[Dict] = []
        pending: List[Key] = []
        self._collect(self._random_key, self.population, pending)
        if not pending:
            raise RuntimeError(f'no path within {self._limits()} after {self.population * self.max_tries_factor} '
                               f'random draws')
        for generation in range(self.generations):
            new_scores = []
            for key in pending:
                self.scores[key] = float(score_fn(_path(key)))
                new_scores.append(self.scores[key])
            parents = self.top()
            best = parents[0]
            entry = dict(generation=generation, evaluated=len(pending),
                         best_top1=max(new_scores) if new_scores else None,
                         mean_top1=float(np.mean(new_scores)) if new_scores else None,
                         best_so_far=self.scores[best], best_path=_path(best),
                         top_k=[dict(arch=_path(k), top1=self.scores[k], **self._costs(k)) for k in parents])
            history.append(entry)
            if log:
                shown = 'none new' if not new_scores else f"best {entry['best_top1']:.2f} mean {entry['mean_top1']:.2f}"
                latency = '' if self.latency_fn is None else f', {self._latency(best):.3f} ms'
                log(f'generation {generation}: {len(pending)} candidates evaluated ({shown}); best so far '
                    f'{self.scores[best]:.2f} {_path(best)} ({self._flops(best):.1f}M{latency})')
            if generation == self.generations - 1:
                break
            pending = []
            self._collect(lambda: self._mutate(parents), self.mutation_num, pending)
            self._collect(lambda: self._crossover(parents), self.crossover_num, pending)
            self._collect(self._random_key, self.population - len(pending), pending)
        best = self.top(1)[0]
        return _path(best), self.scores[best], history
