"""ONNX Runtime on the CPU, reading the ONNX file of :func:`~pimm.inference.export_onnx`."""
import os

import numpy as np

from .base import Runtime, as_array

__all__ = ['OnnxRuntime']


class OnnxRuntime(Runtime):
    """One ``InferenceSession`` (CPU provider, all graph optimisations, ``threads`` intra-op threads)."""

    name = 'onnxruntime'

    def __init__(self, onnx_file: str, threads: int = 0):
        import onnxruntime as ort
        self.version = ort.__version__
        options = ort.SessionOptions()
        options.log_severity_level = 3   # not its warnings about initializers paddle2onnx left unused
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, images) -> np.ndarray:
        return self.session.run(None, {self._input: as_array(images)})[0]
