"""Measuring a latency table: every part of the hypernetwork and whole networks, exported and timed by one
runtime with the same settings, in one interleaved session (``tools/main.py latency``).

The parts are the fixed stem (stem convolution and the first stage), every choice block at every searched
position (at its real input shape), and the fixed head (last stage, head convolution, pooling,
classifier). The whole networks are ``HyperNet.extract_child`` of paths, exported as ``export`` does.
Parts and networks are timed together, round after round, so that a slower spell of the machine lands
on all of them alike; the correction of :class:`~.latency_table.PathLatency` is fitted on the
calibration networks and judged on the validation networks, which it has not seen.
"""
import datetime
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from pimm.inference import ExportedModel, Timing, create_runtime, device_name, pinned_to_cores, time_interleaved

from ..models.hypernet import HyperNet
from ..models.search_space import CHOICES, SEARCH_SPACE_ID
from .latency_table import STATISTIC, TABLE_KIND, TABLE_VERSION, PathLatency, fit_correction, prediction_report

__all__ = ['LatencySettings', 'LatencyMeter', 'random_paths', 'measure_model']

Path = List[List[int]]


@dataclass
class LatencySettings:
    """How latency is measured: the runtime and its threads, batch, device, and the timing schedule."""
    runtime: str = 'onnxruntime'
    threads: int = 1
    batch_size: int = 1
    gpu: bool = False
    tensorrt: str = 'off'       # off | fp32 | fp16 (Paddle Inference on a GPU)
    warmup: int = 10            # untimed calls of each part or network before the first round
    repeats: int = 20           # timed calls of each, per round (more while they add up to < min_round_ms)
    rounds: int = 7
    min_round_ms: float = 10.0

    pin: bool = True            # pinned to ``threads`` cores while timing (CPU)

    @property
    def precision(self) -> str:
        return 'fp16' if self.tensorrt == 'fp16' else 'fp32'

    @classmethod
    def of_table(cls, latency: PathLatency, **timing) -> 'LatencySettings':
        """The runtime settings a table was measured with (and ``timing`` overrides)."""
        return cls(runtime=latency.runtime, threads=latency.threads, batch_size=latency.batch_size, gpu=latency.gpu,
                   tensorrt=latency.tensorrt, **timing)

    def timed(self, calls: Dict[str, Callable[[], object]], progress=None) -> Dict[str, Timing]:
        """:func:`~pimm.inference.time_interleaved` of ``calls`` with this schedule (pinned when asked)."""
        with pinned_to_cores(self.threads, self.pin and not self.gpu):
            return time_interleaved(calls, warmup=self.warmup, repeats=self.repeats, rounds=self.rounds,
                                    min_round_ms=self.min_round_ms, progress=progress)


def exported_call(layer: nn.Layer, shape: Sequence[int], settings: LatencySettings,
                  exports: List[ExportedModel]) -> Callable[[], object]:
    """A zero-argument call running ``layer`` exported and loaded by the settings' runtime, on a fixed
    random input of ``shape``; the export is appended to ``exports`` (close them when done)."""
    s = settings
    exported = ExportedModel(layer, int(shape[-1]), channels=int(shape[1]))
    exports.append(exported)
    runtime = create_runtime(s.runtime, exported, s.threads, gpu=s.gpu, tensorrt=s.tensorrt, input_shape=shape)
    x = np.random.RandomState(0).rand(*shape).astype(np.float32)
    runtime(x)   # builds what is built on first use (OpenVINO compiles the shape)
    return lambda: runtime(x)


def measure_model(model: nn.Layer, latency: PathLatency, **timing) -> Timing:
    """Latency of ``model`` (a whole network) exported and run exactly as ``latency``'s table was measured:
    its runtime, threads, batch size, device and resolution."""
    settings = LatencySettings.of_table(latency, **timing)
    exports: List[ExportedModel] = []
    try:
        call = exported_call(model, [latency.batch_size, 3, latency.resolution, latency.resolution], settings, exports)
        return settings.timed({'model': call})['model']
    finally:
        for exported in exports:
            exported.close()


class _Stem(nn.Layer):
    """Stem convolution, BN, activation and the fixed first stage of a hypernetwork."""

    def __init__(self, net: HyperNet):
        super().__init__()
        self.conv_stem, self.bn1, self.act1, self.first = net.conv_stem, net.bn1, net.act1, net.blocks[0]

    def forward(self, x):
        return self.first(self.act1(self.bn1(self.conv_stem(x))))


class _Head(nn.Layer):
    """The fixed last stage, pooling, head convolution and classifier of a hypernetwork."""

    def __init__(self, net: HyperNet):
        super().__init__()
        self.last, self.global_pool, self.conv_head = net.blocks[-1], net.global_pool, net.conv_head
        self.act2, self.flatten, self.classifier = net.act2, net.flatten, net.classifier

    def forward(self, x):
        return self.classifier(self.flatten(self.act2(self.conv_head(self.global_pool(self.last(x))))))


def random_paths(sta_num: Sequence[int], count: int, seed: int, exclude=()) -> List[Path]:
    """``count`` distinct paths, every searched layer uniform over the choices (seeded), none in ``exclude``."""
    rng = np.random.RandomState(seed)
    seen = {str(p) for p in exclude}
    out: List[Path] = []
    for _ in range(100 * count + 100):
        if len(out) == count:
            break
        path = [[0]] + [rng.randint(len(CHOICES), size=n).tolist() for n in sta_num] + [[0]]
        if str(path) not in seen:
            seen.add(str(path))
            out.append(path)
    return out


class LatencyMeter:
    """Exports and times the parts of ``hypernet`` and whole paths with one :class:`LatencySettings`."""

    def __init__(self, hypernet: HyperNet, settings: LatencySettings):
        self.net, self.settings = hypernet.eval(), settings
        self.resolution = hypernet.resolution
        self._exports: List[ExportedModel] = []

    # ---- what is measured -----------------------------------------------------------------------------
    def parts(self) -> List[Tuple[str, nn.Layer, List[int]]]:
        """``(name, layer, input shape)`` of the fixed stem, every choice block, the fixed head."""
        b = self.settings.batch_size
        stem = _Stem(self.net)
        with paddle.no_grad():
            x = stem(paddle.zeros([1, 3, self.resolution, self.resolution]))
            out = [('stem', stem, [b, 3, self.resolution, self.resolution])]
            for s, n in enumerate(self.net.sta_num):
                for i in range(n):
                    shape = [b] + list(x.shape[1:])
                    out.extend((f'block {s + 1}.{i}.{c}', self.net.blocks[s + 1][i][c], shape)
                               for c in range(len(CHOICES)))
                    x = self.net.blocks[s + 1][i][0](x)
        return out + [('head', _Head(self.net), [b] + list(x.shape[1:]))]

    def runtime(self, layer: nn.Layer, shape: Sequence[int]) -> Callable[[], object]:
        """:func:`exported_call` of ``layer`` at ``shape`` (removed by :meth:`close`)."""
        return exported_call(layer, shape, self.settings, self._exports)

    def path_runtime(self, path: Path) -> Callable[[], object]:
        """:meth:`runtime` of the whole network of ``path`` (the inherited weights; latency does not
        depend on their values)."""
        b = self.settings.batch_size
        return self.runtime(self.net.extract_child(path), [b, 3, self.resolution, self.resolution])

    def close(self) -> None:
        for exported in self._exports:
            exported.close()
        self._exports = []

    # ---- the table --------------------------------------------------------------------------------------
    def build(self, calibrate: int, validate: int, seed: int, runtime_version: str, num_classes: int,
              global_pool: str, bar: Optional[Callable[[str, int], Callable[[int], None]]] = None) -> PathLatency:
        """Measure the parts, ``calibrate`` random paths plus the all-smallest and all-largest choice paths
        (the correction's fit) and ``validate`` other random paths (its proof), all in one session; the
        table, validated. ``bar(description, total)`` gives a progress callback."""
        bar = bar or (lambda desc, total: (lambda n: None))
        sta = self.net.sta_num
        extremes = [[[0]] + [[c] * n for n in sta] + [[0]] for c in (0, len(CHOICES) - 1)]
        calibration = extremes + random_paths(sta, calibrate, seed, exclude=extremes)
        validation = random_paths(sta, validate, seed + 1, exclude=calibration)
        parts = self.parts()
        calls: Dict[str, Callable[[], object]] = {}
        step = bar('export', len(parts) + len(calibration) + len(validation))
        for name, layer, shape in parts:
            calls[name] = self.runtime(layer, shape)
            step(1)
        for kind, paths in (('calibration', calibration), ('validation', validation)):
            for i, path in enumerate(paths):
                calls[f'{kind} {i}'] = self.path_runtime(path)
                step(1)
        timings = self.settings.timed(calls, bar('timing', len(calls) * (self.settings.rounds + 1)))
        table = self._table(parts, timings, runtime_version, num_classes, global_pool)
        latency = PathLatency(table)
        cal_measured = [getattr(timings[f'calibration {i}'], STATISTIC) for i in range(len(calibration))]
        scale, offset = fit_correction([latency.parts_ms(p) for p in calibration], cal_measured)
        table['correction'] = dict(scale=scale, offset_ms=offset, fitted_on=len(calibration),
                                   rule='predicted = scale * (fixed + blocks) + offset_ms',
                                   calibration=[dict(arch=p, parts_ms=latency.parts_ms(p), measured_ms=m,
                                                     timing=timings[f'calibration {i}'].to_dict())
                                                for i, (p, m) in enumerate(zip(calibration, cal_measured))])
        latency = PathLatency(table)
        measured = [getattr(timings[f'validation {i}'], STATISTIC) for i in range(len(validation))]
        if validation:
            predicted = [latency.predict(p) for p in validation]
            table['validation'] = dict(prediction_report(validation, predicted, measured), seed=seed + 1,
                                       entries=[dict(arch=p, predicted_ms=q, measured_ms=m,
                                                     timing=timings[f'validation {i}'].to_dict(),
                                                     spread_ms=[timings[f'validation {i}'].p10_ms,
                                                                timings[f'validation {i}'].p90_ms])
                                                for i, (p, q, m) in enumerate(zip(validation, predicted, measured))])
        return PathLatency(table)

    def _table(self, parts, timings: Dict[str, Timing], runtime_version: str, num_classes: int,
               global_pool: str) -> Dict:
        s = self.settings
        valid_for = dict(search_space=SEARCH_SPACE_ID, sta_num=list(self.net.sta_num), resolution=self.resolution,
                         num_classes=num_classes, global_pool=global_pool, runtime=s.runtime,
                         runtime_version=runtime_version, device=device_name(s.gpu), gpu=s.gpu, threads=s.threads,
                         batch_size=s.batch_size, precision=s.precision, tensorrt=s.tensorrt,
                         date=datetime.datetime.now().isoformat(timespec='seconds'))
        fixed, blocks = {}, []
        for name, _, shape in parts:
            entry = dict(input_shape=list(shape), **timings[name].to_dict())
            if name.startswith('block'):
                stage, layer, choice = (int(v) for v in name.split()[1].split('.'))
                blocks.append(dict(stage=stage, layer=layer, choice=choice, **entry))
            else:
                fixed[name] = entry
        return dict(kind=TABLE_KIND, version=TABLE_VERSION, valid_for=valid_for, unit='ms', statistic=STATISTIC,
                    timing=dict(warmup=s.warmup, repeats=s.repeats, rounds=s.rounds, min_round_ms=s.min_round_ms),
                    fixed=fixed, blocks=blocks, correction=dict(scale=1.0, offset_ms=0.0))
