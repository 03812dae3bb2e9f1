"""Paddle Inference: the network as a static graph (``paddle.jit.save``) run by a CPU predictor."""
import os
from typing import Tuple

import numpy as np
import paddle
import paddle.nn as nn

from .base import Runtime, as_array

__all__ = ['save_inference_model', 'paddle_config', 'create_predictor', 'PaddleInferenceRuntime']


def save_inference_model(model: nn.Layer, prefix: str, input_size: int) -> Tuple[str, str]:
    """``paddle.jit.save`` of ``model`` in eval mode for NCHW float32 input named ``x`` with a dynamic
    batch; returns ``(graph file, params file)``: Paddle 3 writes ``prefix.json`` (PIR) and
    ``prefix.pdiparams``, Paddle 2 ``prefix.pdmodel``. Activations are exported as single ops
    (:func:`~pimm.models.layers.activations.fused_activations`)."""
    from paddle.static import InputSpec
    from pimm.models.layers.activations import fused_activations
    model.eval()
    with fused_activations(model):
        paddle.jit.save(model, prefix, input_spec=[InputSpec([None, 3, input_size, input_size], 'float32', 'x')])
    folder, base = os.path.split(prefix)
    graph = next(os.path.join(folder, base + ext) for ext in ('.json', '.pdmodel')
                 if os.path.isfile(os.path.join(folder, base + ext)))
    return graph, prefix + '.pdiparams'


def paddle_config(graph: str, params: str, threads: int = 0):
    """The CPU ``paddle.inference.Config`` we run with (bench/predictor_settings.py measures each setting)."""
    import paddle.inference as pdi
    config = pdi.Config(graph, params)
    config.disable_gpu()
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(threads or os.cpu_count() or 1)
    config.disable_glog_info()
    return config


def create_predictor(graph: str, params: str, threads: int = 0):
    """A CPU Paddle Inference predictor with ``threads`` math threads (0: all cores)."""
    import paddle.inference as pdi
    return pdi.create_predictor(paddle_config(graph, params, threads))


class PaddleInferenceRuntime(Runtime):
    """An exported model (the files :func:`save_inference_model` writes) run by ``paddle.inference``."""

    name = 'paddle'
    version = paddle.__version__

    def __init__(self, graph: str, params: str, threads: int = 0):
        self.predictor = create_predictor(graph, params, threads)
        self._input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, images) -> np.ndarray:
        images = as_array(images)
        self._input.reshape(list(images.shape))
        self._input.copy_from_cpu(images)
        self.predictor.run()
        return self._output.copy_to_cpu()
