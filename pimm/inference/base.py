"""What every inference runtime is: a name, a version, and ``runtime(images) -> logits``."""
import importlib.util
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = ['Runtime', 'RuntimeUnavailableError', 'RUNTIME_PACKAGES', 'missing_packages', 'require_runtime',
           'as_array', 'relative_difference']

# the packages each runtime needs beyond Paddle; the ONNX runtimes read the file paddle2onnx writes
RUNTIME_PACKAGES: Dict[str, Tuple[str, ...]] = {
    'dygraph': (),
    'paddle': (),
    'onnxruntime': ('paddle2onnx', 'onnxruntime'),
    'openvino': ('paddle2onnx', 'openvino'),
}
# the extra of this project that brings them (pyproject.toml)
_EXTRAS = {'onnxruntime': 'onnx', 'openvino': 'openvino'}


class RuntimeUnavailableError(Exception):
    """A runtime was asked for whose package is not installed (one line naming it)."""


class Runtime:
    """``runtime(images)`` gives the logits of a float32 NCHW batch as a numpy array (dygraph: a tensor
    on the model's device)."""

    name = 'runtime'
    version = ''

    def __call__(self, images) -> np.ndarray:
        raise NotImplementedError


def missing_packages(name: str) -> Tuple[str, ...]:
    """The packages ``name`` needs that are not installed."""
    return tuple(p for p in RUNTIME_PACKAGES[name] if importlib.util.find_spec(p) is None)


def require_runtime(name: str, what: Optional[str] = None) -> None:
    """Raise :class:`RuntimeUnavailableError` naming the missing packages of runtime ``name``."""
    missing = missing_packages(name)
    if missing:
        extra = _EXTRAS.get(name)
        hint = f" (or pip install 'paddle-cream[{extra}]')" if extra else ''
        raise RuntimeUnavailableError(f"{what or 'INFERENCE ' + name} needs the package(s) {', '.join(missing)}: "
                                      f"pip install {' '.join(missing)}{hint}")


def as_array(images) -> np.ndarray:
    """A C-contiguous float32 numpy batch of a numpy array or a Paddle tensor."""
    if hasattr(images, 'numpy') and not isinstance(images, np.ndarray):
        images = images.numpy()
    return np.ascontiguousarray(images, dtype=np.float32)


def relative_difference(got, expected) -> Dict[str, float]:
    """``max_abs`` and ``max_rel`` (the max abs difference over the max abs reference logit)."""
    got = np.asarray(got.numpy() if hasattr(got, 'numpy') else got, np.float64)
    expected = np.asarray(expected.numpy() if hasattr(expected, 'numpy') else expected, np.float64)
    if got.shape != expected.shape:
        return dict(max_abs=float('inf'), max_rel=float('inf'))
    max_abs = float(np.abs(got - expected).max()) if got.size else 0.0
    return dict(max_abs=max_abs, max_rel=max_abs / max(float(np.abs(expected).max()) if got.size else 0.0, 1e-12))
