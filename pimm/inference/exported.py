"""One network exported once, in a temporary folder, in every form a runtime reads."""
import os
import tempfile
from typing import Optional, Tuple

import paddle.nn as nn

from .onnx_export import export_onnx
from .paddle_inference import save_inference_model

__all__ = ['ExportedModel']


class ExportedModel:
    """The Paddle Inference files (``paddle.jit.save``) and the ONNX file of ``model``, each made on
    first use and removed with this object."""

    def __init__(self, model: nn.Layer, input_size: int, opset: int = 13):
        self.model, self.input_size, self.opset = model, input_size, opset
        self._tmp = tempfile.TemporaryDirectory(prefix='pimm_export_')
        self._paddle: Optional[Tuple[str, str]] = None
        self._onnx: Optional[str] = None

    @property
    def paddle_files(self) -> Tuple[str, str]:
        """``(graph, params)`` of the static graph."""
        if self._paddle is None:
            self._paddle = save_inference_model(self.model, os.path.join(self._tmp.name, 'inference'),
                                                self.input_size)
        return self._paddle

    @property
    def onnx_file(self) -> str:
        """``model.onnx`` converted from :attr:`paddle_files` by paddle2onnx."""
        if self._onnx is None:
            self._onnx = export_onnx(*self.paddle_files, os.path.join(self._tmp.name, 'model.onnx'), self.opset)
        return self._onnx

    def close(self) -> None:
        self._tmp.cleanup()
