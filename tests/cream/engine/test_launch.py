"""NUM_GPU > 1: the launcher command under device subsets, and a parent that stays off the GPUs."""
import os

import paddle
import pytest
from paddle.distributed.launch.context.device import Device

from cli import load_main
from Paddle_Cream.engine import UserError
from Paddle_Cream.engine.distributed import launch_command, on_cpu


def _devices_flag(cmd):
    return cmd[cmd.index('--devices') + 1] if '--devices' in cmd else ''


@pytest.mark.parametrize('visible, cuda_count, procs', [
    ('4,5,6,7', 4, 4),                                    # the second half of an 8-GPU node
    ('4,5,6,7', 4, 2),
    ('GPU-5a1c-11,GPU-9e0f-22', 2, 2),                    # UUIDs
    ('2,3', 2, 2),                                        # a SLURM allocation
    (None, 8, 8),                                         # everything visible
])
def test_the_launcher_gives_process_i_the_ith_visible_gpu(monkeypatch, visible, cuda_count, procs):
    """paddle.distributed.launch 3.x reads --devices as labels out of CUDA_VISIBLE_DEVICES: '0,1,2,3'
    under '4,5,6,7' was ValueError: '0' is not in list. Run Paddle's own device selection on our command."""
    env = {} if visible is None else {'CUDA_VISIBLE_DEVICES': visible}
    cmd, child_env = launch_command(procs, 'tools/main.py', ['train', 'x.yaml'], '/tmp/logs', env=env,
                                    cuda_count=cuda_count)
    assert cmd[cmd.index('--nproc_per_node') + 1] == str(procs) and cmd[-3:] == ['tools/main.py', 'train', 'x.yaml']
    assert child_env.get('CUDA_VISIBLE_DEVICES') == visible
    for key in ('CUDA_VISIBLE_DEVICES', 'XPU_VISIBLE_DEVICES', 'XPULINK_VISIBLE_DEVICES'):
        monkeypatch.delenv(key, raising=False)
    if visible is None:
        labels = [str(i) for i in range(cuda_count)]   # what detect_device finds on a GPU build
        device = Device(dtype='gpu')
        device.labels = labels
    else:
        monkeypatch.setenv('CUDA_VISIBLE_DEVICES', visible)
        device = Device.parse_device()
    selected = device.get_selected_devices(_devices_flag(cmd))
    assert selected[:procs] == [str(i) for i in range(procs)]  # positions among the visible devices


@pytest.mark.parametrize('visible, cuda_count, procs, words', [
    ('4,5,6,7', 4, 8, ['NUM_GPU 8', 'only 4 GPU']),
    ('0,1,7', 2, 3, ['NUM_GPU 3', 'only 2 GPU', "'0,1,7'"]),   # an entry CUDA cannot open
    ('', 0, 2, ['sees none']),
])
def test_more_processes_than_visible_gpus_is_a_user_error(visible, cuda_count, procs, words):
    with pytest.raises(UserError) as err:
        launch_command(procs, 'tools/main.py', [], '/tmp/logs', env={'CUDA_VISIBLE_DEVICES': visible},
                       cuda_count=cuda_count)
    for w in words:
        assert w in str(err.value)


def test_a_cpu_build_launches_gloo_processes_whatever_cuda_visible_devices_says():
    if paddle.device.is_compiled_with_cuda():
        pytest.skip('a CPU build of Paddle is what this checks')
    cmd, env = launch_command(2, 'tools/main.py', [], '/tmp/logs', env={'CUDA_VISIBLE_DEVICES': '3', 'A': '1'})
    assert '--devices' not in cmd and 'CUDA_VISIBLE_DEVICES' not in env and env['A'] == '1'


class _FakeDevices:
    """paddle.get_device/set_device of a GPU machine: records what the code under test asks for."""

    def __init__(self):
        self.current, self.calls = 'gpu:0', []

    def get(self):
        return self.current

    def set(self, device):
        self.calls.append(device)
        self.current = device


def test_on_cpu_restores_the_device(monkeypatch):
    fake = _FakeDevices()
    monkeypatch.setattr(paddle, 'get_device', fake.get)
    monkeypatch.setattr(paddle, 'set_device', fake.set)
    with pytest.raises(KeyError):
        with on_cpu():
            assert fake.current == 'cpu'
            raise KeyError('a failing check')
    assert fake.current == 'gpu:0' and fake.calls == ['cpu', 'gpu:0']


def test_the_relaunching_parent_checks_its_inputs_on_the_cpu(monkeypatch, tmp_path):
    """The parent's checks build the hypernetwork and its FLOPs table: on the default device that opens
    a CUDA context on GPU 0 and keeps its memory for the whole run beside rank 0's."""
    import subprocess
    import Paddle_Cream.engine.search_setup as search_setup
    fake, seen, launched = _FakeDevices(), [], []
    monkeypatch.setattr(paddle, 'get_device', fake.get)
    monkeypatch.setattr(paddle, 'set_device', fake.set)
    monkeypatch.setattr(search_setup, 'check_train_inputs', lambda cfg: seen.append(fake.current))

    class _FakeLauncher:
        def __init__(self, cmd, env=None):
            launched.append(cmd)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(subprocess, 'Popen', _FakeLauncher)
    main = load_main()
    code = main(['train', os.path.join('configs', 'demo', 'train.yaml'), 'NUM_GPU', '2', 'SAVE_PATH', str(tmp_path)])
    assert code == 0 and seen == ['cpu'] and len(launched) == 1
    assert fake.current == 'gpu:0'
