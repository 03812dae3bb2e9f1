"""Latency of runtimes, measured so that two measurements can be compared: warm-up, many timed calls,
sides interleaved over rounds, the median kept with its spread, the process pinned to its cores."""
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Hashable, Iterator, List, Optional, Sequence

import numpy as np

__all__ = ['Timing', 'time_interleaved', 'pinned_to_cores', 'cpu_name', 'device_name']


@dataclass
class Timing:
    """Milliseconds per call: ``median_ms`` (the median of the round medians of :func:`time_interleaved`,
    else of every call) and the 10th, 25th and 90th percentiles of every timed call."""
    median_ms: float
    p10_ms: float
    p90_ms: float
    calls: int
    p25_ms: float = float('nan')

    @classmethod
    def of(cls, samples_ms: Sequence[float], median_ms: Optional[float] = None) -> 'Timing':
        s = np.asarray(samples_ms, dtype=np.float64)
        median = float(np.median(s)) if median_ms is None else float(median_ms)
        return cls(median, float(np.percentile(s, 10)), float(np.percentile(s, 90)), int(s.size),
                   float(np.percentile(s, 25)))

    def to_dict(self) -> Dict[str, float]:
        return dict(median_ms=self.median_ms, p10_ms=self.p10_ms, p25_ms=self.p25_ms, p90_ms=self.p90_ms,
                    calls=self.calls)


def _call_ms(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return 1e3 * (time.perf_counter() - start)


def time_interleaved(calls: Dict[Hashable, Callable[[], object]], warmup: int = 10, repeats: int = 20,
                     rounds: int = 7, min_round_ms: float = 10.0, round_warmup: int = 2,
                     progress: Optional[Callable[[int], None]] = None) -> Dict[Hashable, Timing]:
    """:class:`Timing` of each zero-argument call (its output must be ready when it returns: a runtime
    that copies its result to the host).

    Each side is warmed up ``warmup`` times; then every round visits every side (in a rotated order),
    makes ``round_warmup`` untimed calls (the caches hold another side's data) and times ``repeats``
    consecutive calls, more while they add up to less than ``min_round_ms``. A side's latency is the
    median of its round medians: a slow spell of the machine that hits one round of a side (a neighbour's
    burst on a shared host) does not move it. ``progress(n)`` is told after each side's warm-up and
    round (``len(calls) * (rounds + 1)`` steps in all).
    """
    names: List[Hashable] = list(calls)
    samples: Dict[Hashable, List[float]] = {name: [] for name in names}
    round_medians: Dict[Hashable, List[float]] = {name: [] for name in names}
    for name in names:
        for _ in range(warmup):
            calls[name]()
        if progress:
            progress(1)
    for r in range(rounds):
        shift = r % max(len(names), 1)
        for name in names[shift:] + names[:shift]:
            for _ in range(round_warmup):
                calls[name]()
            spent, this_round = 0.0, []
            while len(this_round) < repeats or spent < min_round_ms:
                ms = _call_ms(calls[name])
                this_round.append(ms)
                spent += ms
            samples[name].extend(this_round)
            round_medians[name].append(float(np.median(this_round)))
            if progress:
                progress(1)
    return {name: Timing.of(samples[name], float(np.median(round_medians[name]))) for name in names}


@contextmanager
def pinned_to_cores(threads: int, enabled: bool = True) -> Iterator[Optional[List[int]]]:
    """Within: this process runs on ``threads`` of the cores it may use (the last ones: the first are
    where the system tends to put its own work), and the earlier set after; yields the cores, or None
    where affinity cannot be set (or ``enabled`` is False). A process that is not moved between cores
    keeps its caches warm and its timings steady."""
    if not enabled or not hasattr(os, 'sched_setaffinity'):
        yield None
        return
    before = os.sched_getaffinity(0)
    allowed = sorted(before)
    cores = allowed[-max(1, min(threads or len(allowed), len(allowed))):]
    try:
        os.sched_setaffinity(0, cores)
    except OSError:
        yield None
        return
    try:
        yield cores
    finally:
        os.sched_setaffinity(0, before)


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s model name on Linux) and its logical core count."""
    name = ''
    try:
        with open('/proc/cpuinfo') as f:
            name = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), '')
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


def device_name(on_gpu: bool) -> str:
    """The GPU's name (``on_gpu``) or :func:`cpu_name`."""
    if on_gpu:
        import paddle
        return paddle.device.cuda.get_device_name()
    return cpu_name()

