"""``create_runtime`` (one runtime from exported files) and ``create_runner`` (INFERENCE for a network).

``INFERENCE auto`` on a CPU exports the network, runs the first batch through dygraph and through
every runtime that is installed, keeps those whose logits equal dygraph's to :data:`PARITY_RTOL`
(relative to the largest logit), times the survivors on that batch and serves the rest of the run with
the fastest. A named runtime is checked the same way; one that fails the check (or cannot be built) is
not used: one warning line, and dygraph serves. On a GPU ``auto`` is dygraph.
"""
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from .base import Runtime, missing_packages, relative_difference, require_runtime
from .dygraph import DygraphRuntime
from .exported import ExportedModel
from .onnx_runtime import OnnxRuntime
from .openvino_runtime import OpenVinoRuntime
from .paddle_inference import PaddleInferenceRuntime

__all__ = ['INFERENCE_CHOICES', 'CPU_RUNTIMES', 'PARITY_RTOL', 'available_runtimes', 'check_inference',
           'create_runtime', 'create_runner', 'runtime_version', 'Runner']

CPU_RUNTIMES = ('openvino', 'onnxruntime', 'paddle')     # exported runtimes, in the order they are tried
INFERENCE_CHOICES = ('auto', 'dygraph') + CPU_RUNTIMES
PARITY_RTOL = 1e-4          # max |runtime - dygraph| / max |dygraph| on the first batch (export's tolerance)
TIMING_IMAGES = 16          # images of the first batch that auto times each runtime on
TIMING_ROUNDS = 3           # interleaved rounds; the median is compared
DROP_AFTER = 3.0            # a runtime this many times slower than the best after one round is not timed again


def available_runtimes() -> List[str]:
    """The runtimes whose packages are installed (dygraph and paddle always)."""
    return ['dygraph'] + [name for name in CPU_RUNTIMES if not missing_packages(name)]


def runtime_version(name: str) -> str:
    """The installed version of runtime ``name`` (Paddle's for dygraph and Paddle Inference)."""
    require_runtime(name)
    if name in ('dygraph', 'paddle'):
        return paddle.__version__
    if name == 'onnxruntime':
        import onnxruntime
        return onnxruntime.__version__
    import openvino
    return openvino.__version__.split('-')[0]


def check_inference(kind: str) -> None:
    """Refuse (before anything is built) an unknown INFERENCE or a runtime whose package is missing."""
    if kind not in INFERENCE_CHOICES:
        raise ValueError(f"INFERENCE must be one of {', '.join(INFERENCE_CHOICES)}, got '{kind}'")
    if kind != 'auto':
        require_runtime(kind)


def create_runtime(name: str, exported: ExportedModel, threads: int = 0, gpu: bool = False,
                   tensorrt: str = 'off', input_shape: Optional[Sequence[int]] = None) -> Runtime:
    """Runtime ``name`` of ``exported`` with ``threads`` CPU threads (0: all cores). ``gpu``: Paddle
    Inference on GPU 0, with ``tensorrt`` 'fp32'/'fp16' engines built for ``input_shape`` (a CUDA build
    of Paddle; the ONNX runtimes here are their CPU builds)."""
    require_runtime(name)
    if gpu and name != 'paddle':
        raise ValueError(f"runtime '{name}' runs on the CPU here; on a GPU use paddle (Paddle Inference)")
    if tensorrt != 'off' and not (gpu and input_shape):
        raise ValueError('TensorRT engines need gpu=True and the input shape to build them for')
    if name == 'dygraph':
        return DygraphRuntime(exported.model)
    if name == 'paddle':
        files = exported.tensorrt_files(input_shape, tensorrt) if tensorrt != 'off' else exported.paddle_files
        return PaddleInferenceRuntime(*files, threads=threads, gpu=gpu)
    if name == 'onnxruntime':
        return OnnxRuntime(exported.onnx_file, threads)
    if name == 'openvino':
        return OpenVinoRuntime(exported.onnx_file, threads)
    raise ValueError(f"unknown runtime '{name}' (choices: {', '.join(INFERENCE_CHOICES[1:])})")


def _elapsed_ms(run: Callable, x) -> float:
    start = time.perf_counter()
    out = run(x)
    if isinstance(out, paddle.Tensor):
        out.numpy()   # dygraph on a GPU returns before it has finished
    return 1e3 * (time.perf_counter() - start)


class Runner:
    """``runner(images) -> logits``; the runtime is settled on the first call (see the module doc).

    ``name`` is the runtime serving (``'auto'`` or the one asked for until the first batch);
    ``report`` says how it was chosen: the parity of every runtime tried and the timings.
    """

    def __init__(self, model: nn.Layer, input_size: int, kind: str = 'auto', threads: int = 0,
                 log: Optional[Callable[[str], None]] = None):
        check_inference(kind)
        self.kind, self.threads, self.log = kind, threads, log or (lambda msg: None)
        self.dygraph = DygraphRuntime(model)
        on_gpu = 'gpu' in paddle.device.get_device()
        if kind == 'dygraph' or (kind == 'auto' and on_gpu):
            self.candidates: Sequence[str] = ()
        else:
            self.candidates = [kind] if kind != 'auto' else [n for n in CPU_RUNTIMES if not missing_packages(n)]
        self.exported = ExportedModel(model, input_size) if self.candidates else None
        self.runtime: Optional[Runtime] = None if self.candidates else self.dygraph
        self.report: Dict[str, object] = {}

    @property
    def name(self) -> str:
        return self.runtime.name if self.runtime is not None else self.kind

    def __call__(self, images):
        if self.runtime is None:
            return self._choose(images)
        return self.runtime(images)

    def _try(self, name: str, images, expected: np.ndarray):
        """``(runtime, logits)``, or None with a warning when it cannot be built or its logits differ."""
        try:
            runtime = create_runtime(name, self.exported, self.threads)
            logits = runtime(images)
        except Exception as e:  # an export or a runtime that fails here must not stop the run
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            self.log(f'warning: INFERENCE {name} is not used: it failed on the first batch ({reason})')
            self.report[name] = dict(error=reason)
            return None
        diff = relative_difference(logits, expected)
        self.report[name] = dict(version=runtime.version, **diff)
        if not diff['max_rel'] <= PARITY_RTOL:   # NaN fails too
            self.log(f"warning: INFERENCE {name} is not used: its logits differ from dygraph's by "
                     f"{diff['max_rel']:.1e} relative on the first batch (> {PARITY_RTOL:g})")
            return None
        return runtime, logits

    def _choose(self, images):
        start = time.perf_counter()
        reference = self.dygraph(images)
        expected = reference.numpy()
        eager_ms = 1e3 * (time.perf_counter() - start) * min(len(images), TIMING_IMAGES) / max(len(images), 1)
        passed = {}
        for name in self.candidates:
            tried = self._try(name, images, expected)
            if tried is not None:
                passed[name] = tried
        if not passed:
            self.runtime = self.dygraph
            self.log('inference: dygraph' + (' (no exported runtime passed the check)' if self.candidates else ''))
            return reference
        if self.kind == 'auto':
            passed['dygraph'] = (self.dygraph, reference)
            timings = self._time({n: rt for n, (rt, _) in passed.items()}, images, {'dygraph': eager_ms})
            chosen = min(timings, key=timings.get)
            self.report['timing_ms'] = timings
        else:
            chosen = self.kind
        self.runtime, logits = passed[chosen]
        for name in list(passed):
            if name != chosen:
                del passed[name]   # the runtimes not chosen free their memory
        self._log_choice()
        return logits

    def _time(self, runtimes: Dict[str, Runtime], images, known: Dict[str, float]) -> Dict[str, float]:
        """Median ms of each runtime on the first TIMING_IMAGES images; ``known``: a first-round time
        already measured (dygraph's reference forward: it is not run again when far slower)."""
        x = images[:TIMING_IMAGES]
        times: Dict[str, List[float]] = {name: [] for name in runtimes}
        for name, runtime in runtimes.items():
            if name not in known:
                runtime(x)   # warm-up at this batch size (OpenVINO compiles a shape on first sight)
        for round_ in range(TIMING_ROUNDS):
            for name in list(times):
                times[name].append(known[name] if round_ == 0 and name in known else _elapsed_ms(runtimes[name], x))
            if round_ == 0:
                best = min(t[0] for t in times.values())
                times = {n: t for n, t in times.items() if t[0] <= DROP_AFTER * best}
        self.report['timing_images'] = len(x)
        return {name: float(np.median(t)) for name, t in times.items()}

    def _log_choice(self) -> None:
        name = self.runtime.name
        line = f'inference: {name} {self.runtime.version}'
        if name != 'dygraph':
            line += f" (logits equal dygraph's to {self.report[name]['max_rel']:.1e} relative on the first batch)"
        timings = self.report.get('timing_ms')
        if timings:
            ranked = sorted(timings.items(), key=lambda i: i[1])
            line += (f"; fastest of {', '.join(f'{n} {t:.1f} ms' for n, t in ranked)}"
                     f" per {self.report['timing_images']} images")
        self.log(line)

    def close(self) -> None:
        if self.exported is not None:
            self.exported.close()


def create_runner(model: nn.Layer, input_size: int, kind: str = 'auto', threads: int = 0,
                  log: Optional[Callable[[str], None]] = None) -> Runner:
    """The evaluation runner of ``INFERENCE kind`` for ``model`` (see the module doc)."""
    return Runner(model, input_size, kind, threads, log)
