"""Latency of any path, from a table measured on the user's device (``tools/main.py latency``).

The table holds the milliseconds (``statistic``, below) of every choice block at every searched
position, run alone at its real input shape, and of the fixed parts (stem with the first stage; last stage with the head
and classifier), each exported and run by the deployment runtime. A path's latency is predicted as

    predicted = scale * (fixed parts + the path's blocks) + offset

where ``scale`` and ``offset`` (the correction) are fitted by least squares on whole networks measured
end to end when the table was built: a part run alone pays the runtime's per-call cost (feeding,
fetching, launching) that a whole network pays once, and a whole network can fuse or cache across
block boundaries; both are nearly the same for every path, so a line fits them. The table also says
what it is valid for (search space, layers, resolution, classes, runtime, device, threads, batch,
precision) and how well it predicted paths it was not fitted on (``validation``).

Every figure is the lower quartile of a part's timed calls (``STATISTIC``; median and spread are stored
beside it): on a shared machine interference only ever adds time, so the lower quartile follows the
device's own speed more steadily than the median does, and predicted and measured latency (validation,
``export``) are the same statistic. Measured on this 2-core machine, it predicted random paths with a
higher Kendall tau than the median for ONNX Runtime and Paddle Inference (docs/search.md).
"""
import json
import os
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from pimm.inference.timing import Timing

from ..models.search_space import CHOICES, SEARCH_SPACE_ID
from .rank_correlation import kendall_tau

__all__ = ['PathLatency', 'LatencyTableError', 'TABLE_KIND', 'STATISTIC', 'fit_correction', 'prediction_report']

TABLE_KIND = 'cream-latency-table'
TABLE_VERSION = 1
Key = Tuple[int, int, int]   # (stage 1..5, layer, choice)
STATISTIC = 'p25_ms'         # the Timing figure a table holds and a measurement is compared by
STATISTICS = ('median_ms', 'p25_ms', 'p10_ms')


class LatencyTableError(ValueError):
    """A latency table that cannot be read, or that does not fit the search it is given to (one line)."""


def fit_correction(parts_ms: Sequence[float], measured_ms: Sequence[float]) -> Tuple[float, float]:
    """``(scale, offset)`` minimising the squared relative error of ``scale * parts + offset`` against
    the whole-network measurements (relative: a 10% miss weighs the same on a fast and a slow path)."""
    x = np.asarray(parts_ms, dtype=np.float64)
    y = np.asarray(measured_ms, dtype=np.float64)
    if x.size < 2 or np.ptp(x) <= 0:
        return 1.0, float(np.mean(y - x)) if x.size else 0.0
    design = np.stack([x / y, 1.0 / y], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    return float(scale), float(offset)


def prediction_report(paths: Sequence[Sequence[Sequence[int]]], predicted: Sequence[float],
                      measured: Sequence[float]) -> Dict[str, Any]:
    """How well ``predicted`` matches ``measured``: mean absolute percentage error, the share within
    +-10%, Kendall tau, and the worst path."""
    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    err = (p - m) / m
    worst = int(np.argmax(np.abs(err)))
    return dict(paths=len(m), mape_percent=float(100 * np.mean(np.abs(err))),
                within_10_percent=float(np.mean(np.abs(err) <= 0.10)),
                kendall_tau=float(kendall_tau(p, m)) if len(m) > 1 else float('nan'),
                worst=dict(arch=[list(s) for s in paths[worst]], predicted_ms=float(p[worst]),
                           measured_ms=float(m[worst]), error_percent=float(100 * err[worst])))


def _need(mapping: Any, key: str, kind, where: str):
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LatencyTableError(f"{where}: '{key}' is missing or malformed: not a latency table of tools/main.py "
                                f"latency")
    return value


class PathLatency:
    """``predict(path) -> milliseconds`` from a latency table; the settings it is valid for are attributes
    (``resolution``, ``num_classes``, ``sta_num``, ``runtime``, ``threads``, ``batch_size``, ...).

    ``PathLatency.load(file)`` reads a table; :meth:`check_fits` refuses one made for another search."""

    SETTINGS = ('search_space', 'sta_num', 'resolution', 'num_classes', 'global_pool', 'runtime', 'runtime_version',
                'device', 'gpu', 'threads', 'batch_size', 'precision', 'tensorrt', 'date')

    def __init__(self, table: Dict[str, Any], source: str = 'latency table'):
        """``table``: the JSON tree :meth:`to_dict` writes (checked; :class:`LatencyTableError` otherwise)."""
        self.source = source
        if not isinstance(table, dict) or table.get('kind') != TABLE_KIND:
            raise LatencyTableError(f'{source}: not a latency table of tools/main.py latency')
        if table.get('version') != TABLE_VERSION:
            raise LatencyTableError(f"{source}: table version {table.get('version')!r}, this code reads "
                                    f"{TABLE_VERSION}: build it again with tools/main.py latency")
        valid = _need(table, 'valid_for', dict, source)
        self.statistic = table.get('statistic')
        if self.statistic not in STATISTICS:
            raise LatencyTableError(f"{source}: 'statistic' {self.statistic!r} is not one of {', '.join(STATISTICS)}")
        self.search_space = _need(valid, 'search_space', str, source)
        self.sta_num: List[int] = [int(n) for n in _need(valid, 'sta_num', list, source)]
        self.resolution = _need(valid, 'resolution', int, source)
        self.num_classes = _need(valid, 'num_classes', int, source)
        self.global_pool = _need(valid, 'global_pool', str, source)
        self.runtime = _need(valid, 'runtime', str, source)
        self.runtime_version = _need(valid, 'runtime_version', str, source)
        self.device = _need(valid, 'device', str, source)
        self.threads = _need(valid, 'threads', int, source)
        self.batch_size = _need(valid, 'batch_size', int, source)
        self.precision = _need(valid, 'precision', str, source)
        self.gpu = valid.get('gpu') is True
        self.tensorrt = str(valid.get('tensorrt', 'off'))
        self.date = _need(valid, 'date', str, source)
        fixed = _need(table, 'fixed', dict, source)
        self.fixed_ms = sum(self._ms(_need(fixed, name, dict, source), f'fixed part {name}') for name in fixed)
        self.block_ms: Dict[Key, float] = {}
        for block in _need(table, 'blocks', list, source):
            key = tuple(_need(block, k, int, source) for k in ('stage', 'layer', 'choice'))
            self.block_ms[key] = self._ms(block, f'block {key}')
        wanted = {(s + 1, layer, c) for s, n in enumerate(self.sta_num) for layer in range(n)
                  for c in range(len(CHOICES))}
        if set(self.block_ms) != wanted:
            missing = sorted(wanted - set(self.block_ms))
            raise LatencyTableError(f'{source}: the blocks do not cover layers {self.sta_num} x {len(CHOICES)} '
                                    f'choices (first missing: {missing[:1] or "none; extra blocks"})')
        correction = _need(table, 'correction', dict, source)
        self.scale = float(_need(correction, 'scale', (int, float), source))
        self.offset_ms = float(_need(correction, 'offset_ms', (int, float), source))
        if not (math.isfinite(self.scale) and self.scale > 0 and math.isfinite(self.offset_ms)):
            raise LatencyTableError(f'{source}: its correction (scale {self.scale}, offset {self.offset_ms}) is not '
                                    f'a positive finite line')
        self.validation: Optional[Dict[str, Any]] = table.get('validation')
        self.table = table

    def _ms(self, entry: Dict[str, Any], what: str) -> float:
        value = entry.get(self.statistic) if isinstance(entry, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise LatencyTableError(f'{self.source}: {what} has no finite {self.statistic}')
        return float(value)

    def measured_ms(self, timing: Timing) -> float:
        """The figure of ``timing`` that this table's predictions are comparable with (its statistic)."""
        return float(getattr(timing, self.statistic))

    @classmethod
    def load(cls, file: str) -> 'PathLatency':
        """The table in ``file`` (a literal path); :class:`LatencyTableError` in one line when it is missing,
        not JSON, or not a latency table."""
        if os.path.isdir(file):
            raise LatencyTableError(f"latency table '{file}' is a directory: give its latency_table.json")
        try:
            with open(file, encoding='utf-8') as f:
                table = json.load(f)
        except FileNotFoundError:
            raise LatencyTableError(f"latency table '{file}' not found") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise LatencyTableError(f"latency table '{file}' is not readable JSON ({type(e).__name__})") from None
        return cls(table, source=f"latency table '{file}'")

    def to_dict(self) -> Dict[str, Any]:
        return self.table

    def settings(self) -> Dict[str, Any]:
        """What the table is valid for (the ``valid_for`` entry)."""
        return {name: getattr(self, name) for name in self.SETTINGS}

    def parts_ms(self, path: Sequence[Sequence[int]]) -> float:
        """The plain sum: fixed parts plus the path's blocks, each as measured alone."""
        try:
            return self.fixed_ms + sum(self.block_ms[(s, layer, int(c))] for s in range(1, len(path) - 1)
                                       for layer, c in enumerate(path[s]))
        except KeyError:
            raise ValueError(f'path {path} does not fit the table (layers {self.sta_num})') from None

    def predict(self, path: Sequence[Sequence[int]]) -> float:
        """Predicted milliseconds of ``path`` with the table's runtime, device, threads and batch size."""
        if [len(stage) for stage in path[1:-1]] != self.sta_num:
            raise ValueError(f'path {path} does not fit the table (layers {self.sta_num})')
        return self.scale * self.parts_ms(path) + self.offset_ms

    def bounds(self) -> Tuple[float, float]:
        """Predicted milliseconds of the fastest and of the slowest path."""
        fastest, slowest = self.fixed_ms, self.fixed_ms
        for s, n in enumerate(self.sta_num):
            for layer in range(n):
                values = [self.block_ms[(s + 1, layer, c)] for c in range(len(CHOICES))]
                fastest, slowest = fastest + min(values), slowest + max(values)
        return self.scale * fastest + self.offset_ms, self.scale * slowest + self.offset_ms

    def extreme_paths(self) -> Tuple[List[List[int]], List[List[int]]]:
        """The fastest and the slowest path (each layer's fastest / slowest choice)."""
        def pick(best):
            return [[0]] + [[best(range(len(CHOICES)), key=lambda c: self.block_ms[(s + 1, layer, c)])
                             for layer in range(n)] for s, n in enumerate(self.sta_num)] + [[0]]
        return pick(min), pick(max)

    def check_fits(self, sta_num: Sequence[int], resolution: int, num_classes: int, global_pool: str = 'avg') -> None:
        """:class:`LatencyTableError` naming the first setting of the search that differs from the table's."""
        wanted = dict(search_space=SEARCH_SPACE_ID, sta_num=list(sta_num), resolution=int(resolution),
                      num_classes=int(num_classes), global_pool=global_pool)
        for name, value in wanted.items():
            if getattr(self, name) != value:
                raise LatencyTableError(f'{self.source} was measured for {name} {getattr(self, name)!r}, this search '
                                        f'has {value!r}: build a table for it with tools/main.py latency')

    def digest(self) -> str:
        """SHA-1 of the table's content (a resumed search refuses another table)."""
        import hashlib
        return hashlib.sha1(json.dumps(self.table, sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        """One line: runtime, device, threads, batch, resolution."""
        return (f'{self.runtime} {self.runtime_version} on {self.device}, {self.threads} thread(s), batch '
                f'{self.batch_size}, {self.precision}, {self.resolution}px')
