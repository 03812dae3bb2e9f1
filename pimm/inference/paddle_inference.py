"""Paddle Inference: the network as a static graph (``paddle.jit.save``) run by a CPU predictor."""
import os
from typing import Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from .base import Runtime, as_array

__all__ = ['save_inference_model', 'paddle_config', 'create_predictor', 'tensorrt_model', 'PaddleInferenceRuntime',
           'TENSORRT_CHOICES']

TENSORRT_CHOICES = ('off', 'fp32', 'fp16')   # Paddle Inference on a GPU: without TensorRT, or with it at this precision


def save_inference_model(model: nn.Layer, prefix: str, input_size: int, channels: int = 3) -> Tuple[str, str]:
    """``paddle.jit.save`` of ``model`` in eval mode for NCHW float32 input named ``x`` (``channels`` x
    ``input_size`` x ``input_size``) with a dynamic batch; returns ``(graph file, params file)``: Paddle 3
    writes ``prefix.json`` (PIR) and ``prefix.pdiparams``, Paddle 2 ``prefix.pdmodel``. Activations are
    exported as single ops (:func:`~pimm.models.layers.activations.fused_activations`)."""
    from paddle.static import InputSpec
    from pimm.models.layers.activations import fused_activations
    model.eval()
    with fused_activations(model):
        paddle.jit.save(model, prefix, input_spec=[InputSpec([None, channels, input_size, input_size], 'float32',
                                                             'x')])
    folder, base = os.path.split(prefix)
    graph = next(os.path.join(folder, base + ext) for ext in ('.json', '.pdmodel')
                 if os.path.isfile(os.path.join(folder, base + ext)))
    return graph, prefix + '.pdiparams'


def paddle_config(graph: str, params: str, threads: int = 0, gpu: bool = False):
    """The ``paddle.inference.Config`` we run with: on the CPU oneDNN with ``threads`` math threads
    (bench/predictor_settings.py measures each setting), with ``gpu`` GPU 0 (a CUDA build of Paddle)."""
    import paddle.inference as pdi
    config = pdi.Config(graph, params)
    if gpu:
        config.enable_use_gpu(256, 0)   # initial memory pool (MB), device id
    else:
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads or os.cpu_count() or 1)
    config.disable_glog_info()
    return config


def create_predictor(graph: str, params: str, threads: int = 0, gpu: bool = False):
    """A Paddle Inference predictor: CPU with ``threads`` math threads (0: all cores), or GPU 0."""
    import paddle.inference as pdi
    return pdi.create_predictor(paddle_config(graph, params, threads, gpu))


def tensorrt_model(graph: str, params: str, prefix: str, input_shape: Sequence[int],
                   precision: str = 'fp32') -> Tuple[str, str]:
    """The static graph of :func:`save_inference_model` with its TensorRT-capable subgraphs converted to
    TensorRT engines for one input shape (Paddle 3's PIR-TRT: ``paddle.tensorrt.export.convert``), saved
    as ``prefix.json`` / ``prefix.pdiparams``; a CUDA build of Paddle with TensorRT is needed."""
    from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert
    shape = tuple(int(n) for n in input_shape)
    mode = {'fp32': PrecisionMode.FP32, 'fp16': PrecisionMode.FP16}[precision]
    config = TensorRTConfig(inputs=[Input(min_input_shape=shape, optim_input_shape=shape, max_input_shape=shape,
                                          name='x')], precision_mode=mode, save_model_dir=prefix)
    convert(os.path.splitext(graph)[0], config)
    return prefix + '.json', prefix + '.pdiparams'


class PaddleInferenceRuntime(Runtime):
    """An exported model (the files :func:`save_inference_model` writes) run by ``paddle.inference``."""

    name = 'paddle'
    version = paddle.__version__

    def __init__(self, graph: str, params: str, threads: int = 0, gpu: bool = False):
        self.predictor = create_predictor(graph, params, threads, gpu)
        self._input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, images) -> np.ndarray:
        images = as_array(images)
        self._input.reshape(list(images.shape))
        self._input.copy_from_cpu(images)
        self.predictor.run()
        return self._output.copy_to_cpu()
