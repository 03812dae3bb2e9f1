"""Counting device-to-host copies: each one waits for the device to finish its queued work (a synchronisation on a
GPU), so a training loop that means to keep the device busy should make as few as it can."""
from typing import Callable, Dict

import paddle

__all__ = ['HostCopyCounter']


class HostCopyCounter:
    """Inside ``with HostCopyCounter() as copies:``, ``copies.count`` is the number of calls that read a tensor's
    values on the host (``numpy()``, ``item()``, ``tolist()``, ``float()``, ``int()``, ``bool()``, indexing with
    a tensor). A call made inside another counted call (``float`` calling ``numpy``) counts once. Copies made
    inside Paddle's C++ (e.g. a kernel that reads a shape tensor) are not seen."""
    NAMES = ('numpy', '__float__', 'item', 'tolist', '__bool__', '__int__', '__index__')

    def __init__(self) -> None:
        self.count, self._inside = 0, False
        self._saved: Dict[str, Callable] = {}

    def __enter__(self) -> 'HostCopyCounter':
        for name in self.NAMES:
            original = self._saved[name] = getattr(paddle.Tensor, name)
            setattr(paddle.Tensor, name, self._counted(original))
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._saved.items():
            setattr(paddle.Tensor, name, original)
        self._saved = {}

    def _counted(self, original: Callable) -> Callable:
        def method(tensor, *args, **kwargs):
            if self._inside:
                return original(tensor, *args, **kwargs)
            self.count, self._inside = self.count + 1, True
            try:
                return original(tensor, *args, **kwargs)
            finally:
                self._inside = False
        return method
