"""``tools/main.py latency``: a latency table of the hypernetwork a search config gives, measured on this
device with the runtime it deploys with, and proved on random whole networks.

The FLOPs budget (SUPERNET.FLOPS_MINIMUM/MAXIMUM) gives the hypernetwork's layers and resolution exactly
as ``train`` builds it; DATASET.NUM_CLASSES and NET.GP size its classifier. Every part is exported and
timed by LATENCY.RUNTIME (``auto``: the fastest installed one on a whole network, as ``INFERENCE auto``
would serve), with LATENCY.THREADS threads at batch LATENCY.BATCH_SIZE; LATENCY.CALIBRATE random paths
fit the correction and LATENCY.VALIDATE others prove it (:mod:`Paddle_Cream.search.latency_build`).
The run folder gets ``latency_table.json`` (and a copy at LATENCY.OUTPUT when given), ``latency_validation.png``
and ``latency.log``; SUPERNET.LATENCY_TABLE, EVOLVE.LATENCY_TABLE and EXPORT.LATENCY_TABLE read the table.
"""
import dataclasses
import os
import time
from typing import Callable, Dict, List, Tuple

from tqdm import tqdm

from pimm.inference import CPU_RUNTIMES, RuntimeUnavailableError, missing_packages, require_runtime, \
    runtime_version

from ..models.hypernet import HyperNet
from ..models.search_space import CHOICES
from ..search import search_for_layer
from ..search.latency_build import LatencyMeter, LatencySettings
from ..search.latency_table import PathLatency
from .errors import UserError
from .latency_inputs import gpu_ready
from .output import create_output_dir, refuse_existing_run, setup_logging, write_json_atomic
from .plots import plot_latency_validation
from .seeding import seed_everything

__all__ = ['check_latency_inputs', 'run_latency', 'GOAL_WITHIN_10', 'GOAL_TAU']

TABLE_NAME = 'latency_table.json'
GOAL_WITHIN_10, GOAL_TAU = 0.95, 0.9   # what a table should reach on its validation paths (docs/search.md)


def check_latency_inputs(cfg) -> Tuple[List[int], int]:
    """What a user can get wrong, before anything is built; the hypernetwork's ``(sta_num, resolution)``."""
    lat, s = cfg.LATENCY, cfg.SUPERNET
    if cfg.NUM_GPU != 1:
        raise UserError(f'NUM_GPU {cfg.NUM_GPU}: a latency table is measured in one process (LATENCY.GPU '
                        f'measures on GPU 0); set NUM_GPU 1')
    if lat.GPU:
        if lat.RUNTIME not in ('auto', 'paddle'):
            raise UserError(f'LATENCY.GPU True runs Paddle Inference on the GPU; LATENCY.RUNTIME {lat.RUNTIME} is a '
                            f'CPU runtime here: set LATENCY.RUNTIME paddle')
        if not gpu_ready():
            raise UserError('LATENCY.GPU True needs a CUDA build of Paddle and a visible GPU; this Paddle sees none')
    elif lat.TENSORRT != 'off':
        raise UserError(f'LATENCY.TENSORRT {lat.TENSORRT} needs LATENCY.GPU True (TensorRT runs on the GPU)')
    if lat.RUNTIME != 'auto':
        try:
            require_runtime(lat.RUNTIME, f'LATENCY.RUNTIME {lat.RUNTIME}')
        except RuntimeUnavailableError as e:
            raise UserError(str(e)) from None
    if s.FLOPS_MAXIMUM <= 0:
        raise UserError('SUPERNET.FLOPS_MAXIMUM 0: the hypernetwork a latency table is measured for comes from the '
                        'FLOPs budget of the search it serves; give that budget (FLOPS_MINIMUM/FLOPS_MAXIMUM)')
    try:
        sta_num, resolution = search_for_layer(s.FLOPS_MINIMUM, s.FLOPS_MAXIMUM)
    except ValueError as e:
        raise UserError(f'SUPERNET.FLOPS_MINIMUM/FLOPS_MAXIMUM: {e}') from None
    if lat.OUTPUT:
        if os.path.exists(lat.OUTPUT):
            raise UserError(f"LATENCY.OUTPUT '{lat.OUTPUT}' already exists: a table is never written over; "
                            f"choose another file")
        if not os.path.isdir(os.path.dirname(os.path.abspath(lat.OUTPUT))):
            raise UserError(f"LATENCY.OUTPUT '{lat.OUTPUT}': its folder does not exist")
    refuse_existing_run(cfg.SAVE_PATH, cfg.MODEL, 'latency', TABLE_NAME)
    return sta_num, resolution


def _candidates(gpu: bool) -> List[str]:
    return ['paddle'] if gpu else [name for name in CPU_RUNTIMES if not missing_packages(name)]


def choose_runtime(hypernet: HyperNet, settings: LatencySettings, log: Callable[[str], None]) -> str:
    """The fastest installed runtime on a whole network (every searched layer choice 3, the paper's prior's
    favourite), timed with the table's settings; what ``INFERENCE auto`` would serve with."""
    candidates = _candidates(settings.gpu)
    if len(candidates) == 1:
        return candidates[0]
    path = [[0]] + [[3] * n for n in hypernet.sta_num] + [[0]]
    trial = dataclasses.replace(settings, rounds=3, runtime=candidates[0])
    meters, calls = [], {}
    for name in candidates:
        meter = LatencyMeter(hypernet, dataclasses.replace(trial, runtime=name))
        calls[name] = meter.path_runtime(path)
        meters.append(meter)
    timings = trial.timed(calls)
    for meter in meters:
        meter.close()
    chosen = min(timings, key=lambda n: timings[n].median_ms)
    log(f"LATENCY.RUNTIME auto: {chosen} (whole network {path}: "
        f"{', '.join(f'{n} {t.median_ms:.2f} ms' for n, t in sorted(timings.items(), key=lambda i: i[1].median_ms))})")
    return chosen


def _bars():
    bars: List[tqdm] = []

    def bar(desc: str, total: int):
        bars.append(tqdm(total=total, desc=desc, dynamic_ncols=True))
        return bars[-1].update
    return bar, bars


def report_lines(latency: PathLatency) -> List[str]:
    """The validation as log lines: the error figures, the worst path, whether the goal is met."""
    v = latency.validation
    if not v:
        return ['no validation (LATENCY.VALIDATE 0): this table\'s predictions are unproven']
    worst = v['worst']
    met = v['within_10_percent'] >= GOAL_WITHIN_10 and v['kendall_tau'] >= GOAL_TAU
    return [f"validation on {v['paths']} random whole networks (seed {v['seed']}): mean absolute error "
            f"{v['mape_percent']:.2f}%, {100 * v['within_10_percent']:.0f}% within +-10%, Kendall tau "
            f"{v['kendall_tau']:.3f}",
            f"worst path {worst['arch']}: predicted {worst['predicted_ms']:.3f} ms, measured "
            f"{worst['measured_ms']:.3f} ms ({worst['error_percent']:+.1f}%)",
            f"goal (>= {100 * GOAL_WITHIN_10:.0f}% within +-10% and tau >= {GOAL_TAU}): "
            f"{'met' if met else 'NOT met: time on a quieter machine, or more ROUNDS/REPEATS'}"]


def run_latency(cfg) -> Dict:
    """Build, validate and write the latency table; returns its JSON tree."""
    sta_num, resolution = check_latency_inputs(cfg)
    lat = cfg.LATENCY
    out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'latency')
    log = setup_logging(os.path.join(out_dir, 'latency.log')).info
    seed_everything(cfg.SEED)
    start = time.time()
    hypernet = HyperNet(sta_num, cfg.DATASET.NUM_CLASSES, global_pool=cfg.NET.GP, resolution=resolution)
    settings = LatencySettings(runtime=lat.RUNTIME, threads=lat.THREADS, batch_size=lat.BATCH_SIZE, gpu=lat.GPU,
                               tensorrt=lat.TENSORRT, warmup=lat.WARMUP, repeats=lat.REPEATS, rounds=lat.ROUNDS,
                               pin=lat.PIN)
    if settings.runtime == 'auto':
        settings.runtime = choose_runtime(hypernet, settings, log)
    version = runtime_version(settings.runtime)
    parts = 2 + len(CHOICES) * sum(sta_num)
    log(f"latency table for layers {sta_num} at {resolution}px, {cfg.DATASET.NUM_CLASSES} classes: {parts} parts, "
        f"{lat.CALIBRATE + 2} calibration and {lat.VALIDATE} validation networks; {settings.runtime} {version}, "
        f"{'GPU' if settings.gpu else f'{settings.threads} thread(s)'}, batch {settings.batch_size}; each timed "
        f"{settings.rounds} rounds of {settings.repeats} calls after {settings.warmup} warm-up calls")
    meter = LatencyMeter(hypernet, settings)
    bar, bars = _bars()
    try:
        latency = meter.build(lat.CALIBRATE, lat.VALIDATE, cfg.SEED, version, cfg.DATASET.NUM_CLASSES, cfg.NET.GP,
                              bar)
    finally:
        for b in bars:
            b.close()
        meter.close()
    table = latency.to_dict()
    table['build_seconds'] = round(time.time() - start, 1)
    file = os.path.join(out_dir, TABLE_NAME)   # the run's record, and what marks the folder as taken
    write_json_atomic(table, file)
    if lat.OUTPUT:
        write_json_atomic(table, lat.OUTPUT)
        file = lat.OUTPUT
    if latency.validation:
        plot_latency_validation(latency.validation, os.path.join(out_dir, 'latency_validation.png'),
                                title=f'{latency.runtime} on {latency.device}')
    fastest, slowest = latency.bounds()
    log(f'{latency.describe()}: paths from {fastest:.3f} to {slowest:.3f} ms predicted; correction scale '
        f'{latency.scale:.4f}, offset {latency.offset_ms:+.3f} ms')
    for line in report_lines(latency):
        log(line)
    log(f"built and validated in {table['build_seconds']:.0f}s; table: {os.path.abspath(file)}")
    log(f'search with it: SUPERNET.LATENCY_TABLE {os.path.abspath(file)} SUPERNET.LATENCY_MAXIMUM <ms>')
    return table
