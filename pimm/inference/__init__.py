"""CPU inference runtimes for pimm networks: eager Paddle, Paddle Inference, ONNX Runtime, OpenVINO,
and ``create_runner``, which picks and checks one (``INFERENCE``)."""
from .base import RUNTIME_PACKAGES, Runtime, RuntimeUnavailableError, missing_packages, relative_difference, \
    require_runtime
from .dygraph import DygraphRuntime
from .exported import ExportedModel
from .factory import CPU_RUNTIMES, INFERENCE_CHOICES, PARITY_RTOL, Runner, available_runtimes, check_inference, \
    create_runner, create_runtime, runtime_version
from .onnx_export import OnnxExportError, export_onnx
from .onnx_runtime import OnnxRuntime
from .openvino_runtime import OpenVinoRuntime
from .paddle_inference import TENSORRT_CHOICES, PaddleInferenceRuntime, create_predictor, paddle_config, \
    save_inference_model, tensorrt_model
from .threads import threads_beside_loader
from .timing import Timing, cpu_name, device_name, pinned_to_cores, time_interleaved
