"""The budgets a search holds its paths to, and the hypernetwork they give (docs/reference.md §4): FLOPs
(SUPERNET.FLOPS_MINIMUM/MAXIMUM) and latency predicted by a table of ``tools/main.py latency``
(SUPERNET.LATENCY_TABLE with LATENCY_MINIMUM/MAXIMUM).

Which budget gives the hypernetwork: with a FLOPs budget (FLOPS_MAXIMUM > 0) ``search_for_layer`` gives its
layers and resolution, and a latency table must have been measured for exactly that hypernetwork (as
``tools/main.py latency`` does with the same FLOPs budget, classes and pooling); with a latency budget alone
(FLOPS_MAXIMUM 0) the layers and resolution are the table's.
"""
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..models.hypernet import HyperNet
from ..search import BudgetError, PathLatency, PathSampler, UniformFlopsSampler, search_for_layer
from ..search.flops_table import PathFlops
from .distributed import on_cpu
from .errors import UserError
from .latency_inputs import TableFile, load_latency_table, require_table_fits

__all__ = ['SearchSpace', 'budget_space', 'make_sampler']

Path = List[List[int]]


@dataclass
class SearchSpace:
    """The hypernetwork a search trains (``sta_num``; FLOPs and latency are those at ``resolution``) and the
    budgets its paths are held to."""
    sta_num: List[int]
    resolution: int
    path_flops: PathFlops
    flops_budget: Optional[Tuple[float, float]]             # MFLOPs; None: a latency budget alone
    latency: Optional[PathLatency] = None                   # SUPERNET.LATENCY_TABLE, None without a latency budget
    latency_budget: Optional[Tuple[float, float]] = None    # ms predicted by it
    table: Optional[TableFile] = None                       # the latency table with its file

    @property
    def cost(self) -> str:
        """What "cheaper" means to the board: the budget the search aims at ('latency' when there is one)."""
        return 'flops' if self.latency is None else 'latency'

    @property
    def latency_fn(self) -> Optional[Callable[[Path], float]]:
        return None if self.latency is None else self.latency.predict

    def latency_of(self, path: Path) -> Optional[float]:
        """The predicted milliseconds of ``path`` (None without a latency table)."""
        return None if self.latency is None else self.latency.predict(path)

    def cost_budget(self) -> Tuple[float, float]:
        """The budget of :attr:`cost` (MFLOPs or ms)."""
        return self.flops_budget if self.latency is None else self.latency_budget

    def identity(self) -> Dict[str, Any]:
        """What a resumed run must keep, for the checkpoint's search identity: the table's content (its digest)
        and the latency budget, None without (so checkpoints older than latency budgets still match)."""
        return dict(latency_table_sha1=None if self.latency is None else self.latency.digest(),
                    latency_budget=None if self.latency_budget is None else list(self.latency_budget))

    def describe(self) -> str:
        """The budgets in words, for the log."""
        text = ('no FLOPs budget' if self.flops_budget is None else
                f'FLOPs budget [{self.flops_budget[0]}, {self.flops_budget[1]}]M counted at {self.resolution}px')
        if self.latency is not None:
            text += (f'; latency budget [{self.latency_budget[0]}, {self.latency_budget[1]}] ms predicted by '
                     f'{os.path.abspath(self.table.file)} ({self.latency.describe()})')
        return text

    def arch_entries(self, path: Path) -> Dict[str, Any]:
        """best_arch.json's budget entries for the chosen ``path`` (the latency ones None without a table)."""
        entries = dict(flops_budget=None if self.flops_budget is None else list(self.flops_budget),
                       latency_ms=self.latency_of(path), latency_budget=None, latency_table=None)
        if self.latency is not None:
            entries.update(latency_budget=list(self.latency_budget), latency_table=self.table.record())
        return entries


def _latency_table(cfg) -> Optional[TableFile]:
    """SUPERNET.LATENCY_TABLE read and checked with its budget (None without a table)."""
    s = cfg.SUPERNET
    if not s.LATENCY_TABLE:
        if s.LATENCY_MAXIMUM or s.LATENCY_MINIMUM:
            raise UserError(f'SUPERNET.LATENCY_MINIMUM/LATENCY_MAXIMUM [{s.LATENCY_MINIMUM}, {s.LATENCY_MAXIMUM}] '
                            f'ms need a SUPERNET.LATENCY_TABLE to predict latency: build one with tools/main.py '
                            f'latency')
        return None
    if s.LATENCY_MAXIMUM <= 0:
        raise UserError(f"SUPERNET.LATENCY_TABLE '{s.LATENCY_TABLE}' without a latency budget: set "
                        f"SUPERNET.LATENCY_MAXIMUM (ms) above 0")
    if s.LATENCY_MINIMUM > s.LATENCY_MAXIMUM:
        raise UserError(f'SUPERNET.LATENCY_MINIMUM/LATENCY_MAXIMUM [{s.LATENCY_MINIMUM}, {s.LATENCY_MAXIMUM}] ms: '
                        f'the minimum exceeds the maximum')
    return load_latency_table(s.LATENCY_TABLE, 'SUPERNET.LATENCY_TABLE')


def _layers(cfg, latency: Optional[PathLatency]) -> Tuple[List[int], int]:
    """``(sta_num, resolution)``: the FLOPs budget's hypernetwork, or the table's with a latency budget alone."""
    s = cfg.SUPERNET
    if s.FLOPS_MAXIMUM <= 0 and latency is not None:
        if s.FLOPS_MINIMUM:
            raise UserError(f'SUPERNET.FLOPS_MINIMUM {s.FLOPS_MINIMUM} with FLOPS_MAXIMUM 0 (no FLOPs budget, the '
                            f'latency budget alone): set FLOPS_MINIMUM 0, or give FLOPS_MAXIMUM')
        return list(latency.sta_num), latency.resolution
    try:
        return search_for_layer(s.FLOPS_MINIMUM, s.FLOPS_MAXIMUM)
    except ValueError as e:
        raise UserError(f'SUPERNET.FLOPS_MINIMUM/FLOPS_MAXIMUM: {e}') from None


def budget_space(cfg) -> SearchSpace:
    """The :class:`SearchSpace` the budgets give (see the module's docstring for which gives the layers),
    checked to hold paths within them: the official procedure lowers the resolution with scaled bounds,
    which can leave none, and a latency budget can miss every path. FLOPs depend on the structure, classes
    and pooling only, not on drop rates."""
    s = cfg.SUPERNET
    table = _latency_table(cfg)
    latency = None if table is None else table.table
    sta_num, resolution = _layers(cfg, latency)
    if table is not None:
        require_table_fits(table, sta_num, resolution, cfg.DATASET.NUM_CLASSES, cfg.NET.GP)
    with on_cpu():  # counting FLOPs needs no GPU memory
        path_flops = PathFlops(HyperNet(sta_num, cfg.DATASET.NUM_CLASSES, global_pool=cfg.NET.GP,
                                        resolution=resolution), resolution)
    space = SearchSpace(sta_num, resolution, path_flops,
                        (s.FLOPS_MINIMUM, s.FLOPS_MAXIMUM) if s.FLOPS_MAXIMUM > 0 else None, latency,
                        None if latency is None else (s.LATENCY_MINIMUM, s.LATENCY_MAXIMUM), table)
    if space.flops_budget is not None:
        low, high = path_flops.bounds()
        if low > s.FLOPS_MAXIMUM or high < s.FLOPS_MINIMUM:
            raise UserError(f'SUPERNET.FLOPS_MINIMUM/FLOPS_MAXIMUM [{s.FLOPS_MINIMUM}, {s.FLOPS_MAXIMUM}]: the '
                            f'hypernetwork for it ({sta_num} at {resolution}px) has paths of {low:.1f} to {high:.1f} '
                            f'MFLOPs, none within the budget')
    if latency is not None:
        fastest, slowest = latency.bounds()
        if fastest > s.LATENCY_MAXIMUM or slowest < s.LATENCY_MINIMUM:
            raise UserError(f'SUPERNET.LATENCY_MINIMUM/LATENCY_MAXIMUM [{s.LATENCY_MINIMUM}, {s.LATENCY_MAXIMUM}] ms: '
                            f'{latency.source} predicts the paths of {sta_num} at {resolution}px from '
                            f'{fastest:.3f} ms (fastest) to {slowest:.3f} ms (slowest), none within the budget')
    try:  # both budgets at once can still miss every path the sampler draws: the first draw tells
        make_sampler(cfg, space, cfg.SEED).sample()
    except BudgetError as e:
        bounds = '' if latency is None else ' (paths of {:.3f} to {:.3f} ms predicted)'.format(*latency.bounds())
        raise UserError(f'SUPERNET budgets: {e}{bounds}') from None
    return space


def make_sampler(cfg, space: SearchSpace, seed: int):
    """The search's path sampler (an epoch's, with its ``seed``): SPOS's FLOPs-uniform one, or Cream's
    SUPERNET.HOW_TO_PROB one; held to both budgets."""
    s = cfg.SUPERNET
    low, high = space.flops_budget or (0., math.inf)
    latency = {} if space.latency is None else dict(
        latency_fn=space.latency_fn, latency_minimum=space.latency_budget[0], latency_maximum=space.latency_budget[1])
    if s.METHOD == 'spos':
        return UniformFlopsSampler(space.sta_num, space.path_flops.flops, low, high, seed=seed, **latency)
    return PathSampler(space.sta_num, space.path_flops.flops, low, high, how_to_prob=s.HOW_TO_PROB,
                       pre_prob=tuple(s.PRE_PROB), seed=seed, **latency)
