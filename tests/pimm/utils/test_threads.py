"""pimm.utils.threads and the engine's use of it: each training process on CPU gets its share of the
cores (the affinity mask, not the machine's count); on a GPU nothing is changed."""
import os

import paddle
import pytest

import pimm.utils.threads as threads
from Paddle_Cream.engine.distributed import cpu_math_threads


@pytest.fixture
def calls(monkeypatch):
    seen = []
    monkeypatch.setattr(paddle.base.core, 'set_num_threads', seen.append)
    return seen


@pytest.mark.parametrize('mask, processes, expected', [({0, 1, 2, 3}, 1, 4), ({0, 1, 2, 3}, 2, 2), ({5}, 1, 1),
                                                       ({0, 1}, 8, 1)])
def test_a_process_gets_its_share_of_the_cores_it_may_run_on(monkeypatch, calls, mask, processes, expected):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: mask, raising=False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 64)  # the machine's count is not this process's share
    assert threads.use_all_cores(processes) == expected and calls == [expected]


def test_training_on_a_gpu_leaves_the_cpu_threads_alone(monkeypatch, calls):
    monkeypatch.setattr(paddle, 'get_device', lambda: 'gpu:0')
    assert cpu_math_threads(1) is None and calls == []
    monkeypatch.setattr(paddle, 'get_device', lambda: 'cpu')
    assert cpu_math_threads(1) == threads.available_cores() and len(calls) == 1


def test_the_real_call_is_accepted():
    assert threads.set_math_threads(1) == 1
