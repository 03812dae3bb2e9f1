"""Building GPU-only Paddle objects on a CPU machine, to test (and, in bench/, time) the mechanisms around them."""
from unittest import mock

import paddle.amp.grad_scaler as grad_scaler


class _GpuPlace:
    def is_gpu_place(self):
        return True

    def is_xpu_place(self):
        return False

    def is_custom_place(self):
        return False


def built_as_on_gpu(cls, **kwargs):
    """A ``cls`` (a ``paddle.amp.GradScaler``) built as on a GPU: Paddle disables it when the current place
    is the CPU, but its scale/unscale/step/update run on CPU kernels once built."""
    tracer = grad_scaler._dygraph_tracer()
    fake = type('GpuTracer', (), {'_expected_place': _GpuPlace(), '__getattr__': lambda self, k: getattr(tracer, k)})
    with mock.patch.object(grad_scaler, '_dygraph_tracer', lambda: fake()):
        scaler = cls(**kwargs)
    assert scaler._enable
    return scaler

