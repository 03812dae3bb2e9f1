"""Timing runtimes: the interleaved schedule and its statistics (with a scripted clock), pinning, names;
and the GPU / TensorRT configuration of Paddle Inference (no GPU here: recorded against stubs that stand
for paddle.inference.Config and Paddle 3's paddle.tensorrt.export)."""
import os
import sys
import types

import numpy as np
import pytest

from pimm.inference import timing
from pimm.inference.timing import Timing, cpu_name, pinned_to_cores, time_interleaved


class _ScriptedClock:
    """``perf_counter`` that a call advances by the duration scripted for the side being called."""

    def __init__(self):
        self.now, self.log = 0.0, []

    def perf_counter(self):
        return self.now

    def call(self, name, ms):
        def run():
            self.log.append(name)
            self.now += ms(len([n for n in self.log if n == name])) / 1e3
        return run


def test_interleaved_schedule_counts_rotation_and_round_medians(monkeypatch):
    clock = _ScriptedClock()
    monkeypatch.setattr(timing.time, 'perf_counter', clock.perf_counter)
    def a_ms(i):   # side a's i-th call: after 3 warm-ups, rounds of 2 untimed and 5 timed calls
        r, pos = divmod(i - 4, 7)
        # 1 ms, but 10 ms for the first 2 timed calls of every round and for all of rounds 4-6: 23 of its
        # 35 timed calls are slow, yet only 3 of its 7 round medians
        return 10.0 if i >= 4 and (r >= 4 or pos in (2, 3)) else 1.0
    calls = {'a': clock.call('a', a_ms), 'b': clock.call('b', lambda i: 2.0)}
    steps = []
    result = time_interleaved(calls, warmup=3, repeats=5, rounds=7, min_round_ms=0.0, round_warmup=2,
                              progress=steps.append)
    assert clock.log.count('a') == clock.log.count('b') == 3 + 7 * (2 + 5)
    assert sum(steps) == 2 * (7 + 1)
    rounds = [clock.log[i] for i in range(6, len(clock.log), 14)]  # the first side of each round
    assert rounds == ['a', 'b', 'a', 'b', 'a', 'b', 'a']            # rotated every round
    assert result['b'].median_ms == pytest.approx(2.0) and result['b'].calls == 35
    assert result['a'].median_ms == pytest.approx(1.0)   # the median of every call would be 10
    assert result['a'].p90_ms == pytest.approx(10.0)


def test_min_round_ms_adds_calls_to_short_sides(monkeypatch):
    clock = _ScriptedClock()
    monkeypatch.setattr(timing.time, 'perf_counter', clock.perf_counter)
    result = time_interleaved({'fast': clock.call('fast', lambda i: 0.5)}, warmup=0, repeats=2, rounds=1,
                              min_round_ms=10.0, round_warmup=0)
    assert result['fast'].calls == 20


def test_timing_of_samples():
    t = Timing.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (t.median_ms, t.calls) == (3.0, 5)
    assert t.p10_ms == pytest.approx(np.percentile([1, 2, 3, 4, 100], 10))
    assert set(t.to_dict()) == {'median_ms', 'p10_ms', 'p25_ms', 'p90_ms', 'calls'}


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'), reason='no CPU affinity on this platform')
def test_pinning_is_undone_afterwards():
    before = os.sched_getaffinity(0)
    with pinned_to_cores(1) as cores:
        assert cores is not None and os.sched_getaffinity(0) == set(cores) and len(cores) == 1
    assert os.sched_getaffinity(0) == before
    with pinned_to_cores(1, enabled=False) as cores:
        assert cores is None and os.sched_getaffinity(0) == before


def test_cpu_name_says_the_model_and_cores():
    assert f'({os.cpu_count()} logical cores)' in cpu_name() and len(cpu_name()) > len('( logical cores)') + 2


class _Config:
    """Records what is asked of a paddle.inference.Config."""

    def __init__(self, graph, params):
        self.files, self.calls = (graph, params), []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, args))


def test_paddle_inference_on_a_gpu_asks_for_gpu_0_without_onednn(monkeypatch):
    import paddle.inference as pdi
    from pimm.inference import paddle_config
    monkeypatch.setattr(pdi, 'Config', _Config)
    gpu = paddle_config('m.json', 'm.pdiparams', threads=3, gpu=True)
    assert ('enable_use_gpu', (256, 0)) in gpu.calls
    assert not [c for c in gpu.calls if c[0] in ('disable_gpu', 'enable_mkldnn', 'set_cpu_math_library_num_threads')]
    cpu = paddle_config('m.json', 'm.pdiparams', threads=3)
    assert ('set_cpu_math_library_num_threads', (3,)) in cpu.calls and ('disable_gpu', ()) in cpu.calls


def test_tensorrt_engines_are_built_for_the_shape_and_precision(monkeypatch, tmp_path):
    recorded = {}

    class Input:
        def __init__(self, **kwargs):
            recorded['input'] = kwargs

    class TensorRTConfig:
        def __init__(self, inputs, precision_mode, save_model_dir):
            recorded.update(inputs=inputs, precision=precision_mode, save=save_model_dir)

    def convert(model_path, config):
        recorded['model_path'] = model_path

    export = types.SimpleNamespace(Input=Input, TensorRTConfig=TensorRTConfig, convert=convert,
                                   PrecisionMode=types.SimpleNamespace(FP32='FP32', FP16='FP16'))
    monkeypatch.setitem(sys.modules, 'paddle.tensorrt', types.ModuleType('paddle.tensorrt'))
    monkeypatch.setitem(sys.modules, 'paddle.tensorrt.export', export)
    from pimm.inference import tensorrt_model
    files = tensorrt_model(str(tmp_path / 'inference.json'), str(tmp_path / 'inference.pdiparams'),
                           str(tmp_path / 'trt'), [1, 3, 224, 224], 'fp16')
    assert files == (str(tmp_path / 'trt.json'), str(tmp_path / 'trt.pdiparams'))
    assert recorded['model_path'] == str(tmp_path / 'inference') and recorded['precision'] == 'FP16'
    assert recorded['input'] == dict(min_input_shape=(1, 3, 224, 224), optim_input_shape=(1, 3, 224, 224),
                                     max_input_shape=(1, 3, 224, 224), name='x')
    assert recorded['save'] == str(tmp_path / 'trt')


def test_create_runtime_refuses_cpu_runtimes_on_a_gpu_and_tensorrt_without_one():
    from pimm.inference import ExportedModel, create_runtime
    exported = ExportedModel(None, 8)
    try:
        with pytest.raises(ValueError, match='runs on the CPU'):
            create_runtime('onnxruntime', exported, gpu=True)
        with pytest.raises(ValueError, match='TensorRT'):
            create_runtime('paddle', exported, tensorrt='fp16')
    finally:
        exported.close()
