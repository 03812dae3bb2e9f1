"""One network exported once, in a temporary folder, in every form a runtime reads."""
import os
import tempfile
from typing import Dict, Optional, Sequence, Tuple

import paddle.nn as nn

from .onnx_export import export_onnx
from .paddle_inference import save_inference_model, tensorrt_model

__all__ = ['ExportedModel']


class ExportedModel:
    """The Paddle Inference files (``paddle.jit.save``) and the ONNX file of ``model``, each made on
    first use and removed with this object."""

    def __init__(self, model: nn.Layer, input_size: int, opset: int = 13, channels: int = 3):
        self.model, self.input_size, self.opset, self.channels = model, input_size, opset, channels
        self._tmp = tempfile.TemporaryDirectory(prefix='pimm_export_')
        self._paddle: Optional[Tuple[str, str]] = None
        self._onnx: Optional[str] = None
        self._tensorrt: Dict[tuple, Tuple[str, str]] = {}

    @property
    def paddle_files(self) -> Tuple[str, str]:
        """``(graph, params)`` of the static graph."""
        if self._paddle is None:
            self._paddle = save_inference_model(self.model, os.path.join(self._tmp.name, 'inference'),
                                                self.input_size, self.channels)
        return self._paddle

    def tensorrt_files(self, input_shape: Sequence[int], precision: str) -> Tuple[str, str]:
        """``(graph, params)`` with TensorRT engines for ``input_shape`` at ``precision`` (GPU builds)."""
        key = (tuple(input_shape), precision)
        if key not in self._tensorrt:
            name = f"tensorrt_{precision}_{'x'.join(str(n) for n in input_shape)}"
            self._tensorrt[key] = tensorrt_model(*self.paddle_files, os.path.join(self._tmp.name, name),
                                                 input_shape, precision)
        return self._tensorrt[key]

    @property
    def onnx_file(self) -> str:
        """``model.onnx`` converted from :attr:`paddle_files` by paddle2onnx."""
        if self._onnx is None:
            self._onnx = export_onnx(*self.paddle_files, os.path.join(self._tmp.name, 'model.onnx'), self.opset)
        return self._onnx

    def close(self) -> None:
        self._tmp.cleanup()
