"""Forward passes for evaluation: Paddle dygraph, or the same network exported with
``paddle.jit.save`` and run by a Paddle Inference predictor (oneDNN on CPU), which is
several times faster on CPU and gives the same logits (checked in the tests)."""
import os
import tempfile
from typing import Callable, Tuple

import numpy as np
import paddle
import paddle.nn as nn

__all__ = ['create_runner', 'create_predictor', 'DygraphRunner', 'PredictorRunner', 'save_inference_model',
           'threads_beside_loader']

Runner = Callable[[np.ndarray], np.ndarray]


class DygraphRunner:
    """``model(x)`` in eval mode without autograd."""

    name = 'dygraph'

    def __init__(self, model: nn.Layer):
        self.model = model.eval()

    def __call__(self, images) -> paddle.Tensor:
        """Logits on the model's device (images: a tensor from the loader, or an array)."""
        with paddle.no_grad():
            return self.model(images if isinstance(images, paddle.Tensor) else paddle.to_tensor(images))


def save_inference_model(model: nn.Layer, prefix: str, input_size: int) -> Tuple[str, str]:
    """``paddle.jit.save`` of ``model`` in eval mode for NCHW float32 input named ``x`` with a dynamic
    batch; returns ``(graph file, params file)``: Paddle 3 writes ``prefix.json`` (PIR) and
    ``prefix.pdiparams``, Paddle 2 ``prefix.pdmodel``."""
    from paddle.static import InputSpec
    model.eval()
    paddle.jit.save(model, prefix, input_spec=[InputSpec([None, 3, input_size, input_size], 'float32', 'x')])
    folder, base = os.path.split(prefix)
    graph = next(os.path.join(folder, base + ext) for ext in ('.json', '.pdmodel')
                 if os.path.isfile(os.path.join(folder, base + ext)))
    return graph, prefix + '.pdiparams'


class PredictorRunner:
    """The model exported to a static graph and run by ``paddle.inference`` (oneDNN, CPU threads)."""

    name = 'predictor'

    def __init__(self, model: nn.Layer, input_size: int, threads: int = 0):
        self._tmp = tempfile.TemporaryDirectory(prefix='pimm_export_')
        self._attach(*save_inference_model(model, os.path.join(self._tmp.name, 'model'), input_size), threads)

    @classmethod
    def from_files(cls, graph: str, params: str, threads: int = 0) -> 'PredictorRunner':
        """A runner of an exported model (the files :func:`save_inference_model` writes)."""
        runner = cls.__new__(cls)
        runner._attach(graph, params, threads)
        return runner

    def _attach(self, graph: str, params: str, threads: int) -> None:
        self.predictor = create_predictor(graph, params, threads)
        self._input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, images) -> np.ndarray:
        if isinstance(images, paddle.Tensor):
            images = images.numpy()
        self._input.reshape(list(images.shape))
        self._input.copy_from_cpu(np.ascontiguousarray(images, dtype=np.float32))
        self.predictor.run()
        return self._output.copy_to_cpu()


def create_predictor(graph: str, params: str, threads: int = 0):
    """A CPU Paddle Inference predictor with oneDNN and ``threads`` math threads (0: all cores)."""
    import paddle.inference as pdi
    config = pdi.Config(graph, params)
    config.disable_gpu()
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(threads or os.cpu_count() or 1)
    config.disable_glog_info()
    return pdi.create_predictor(config)


def threads_beside_loader(loader_workers: int, processes: int = 1) -> int:
    """Math threads for the predictor: this process's share of the cores minus its loader workers.

    The workers decode JPEGs while the model runs; giving the model every core as well
    oversubscribes the machine (measured on 2 cores with 2 workers: 1 thread evaluates
    Cream-14 about 20% faster than 2).
    """
    cores = max(1, (os.cpu_count() or 1) // max(1, processes))
    return max(1, cores - max(0, loader_workers))


def create_runner(model: nn.Layer, input_size: int, kind: str = 'auto', threads: int = 0) -> Runner:
    """``kind``: 'dygraph', 'predictor', or 'auto' (predictor on CPU, dygraph on GPU).

    ``threads``: the predictor's CPU math threads (0: all cores).
    """
    if kind not in ('auto', 'dygraph', 'predictor'):
        raise ValueError(f"INFERENCE must be 'auto', 'dygraph' or 'predictor', got '{kind}'")
    on_gpu = 'gpu' in paddle.device.get_device()
    if kind == 'dygraph' or (kind == 'auto' and on_gpu):
        return DygraphRunner(model)
    return PredictorRunner(model, input_size, threads)
