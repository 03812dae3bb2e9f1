"""The ONNX file of an exported Paddle model (``paddle2onnx``), read by ONNX Runtime and OpenVINO."""

__all__ = ['OnnxExportError', 'export_onnx', 'export_openvino_ir']


class OnnxExportError(Exception):
    """paddle2onnx could not convert the network (one line)."""


def export_onnx(graph: str, params: str, file: str, opset: int = 13) -> str:
    """Convert the files of :func:`~pimm.inference.save_inference_model` into ``file``; returns it."""
    import paddle2onnx
    # the model bytes come back (save_file None): paddle2onnx's own file writing runs an optimiser that
    # pip-installs onnx_graphsurgeon at run time
    try:
        model = paddle2onnx.export(graph, params, save_file=None, opset_version=opset, enable_onnx_checker=True)
    except Exception as e:  # paddle2onnx logs the cause and fails with whatever it hit
        raise OnnxExportError(f'paddle2onnx could not convert the network at opset {opset}: {e}') from None
    if not model:
        raise OnnxExportError(f'paddle2onnx could not convert the network at opset {opset} (its log says why)')
    with open(file, 'wb') as f:
        f.write(model)
    return file


def export_openvino_ir(onnx_file: str, xml_file: str) -> str:
    """OpenVINO's own format (``.xml`` + ``.bin``, float32 weights) of ``onnx_file``; returns ``xml_file``.

    It runs as fast as the ONNX file and loads in 0.5-0.9 of the time (bench/deploy_latency.py)."""
    import openvino as ov
    ov.save_model(ov.convert_model(onnx_file), xml_file, compress_to_fp16=False)
    return xml_file
