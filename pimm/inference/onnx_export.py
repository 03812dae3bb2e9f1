"""The ONNX file of an exported Paddle model (``paddle2onnx``), read by ONNX Runtime and OpenVINO."""

__all__ = ['OnnxExportError', 'export_onnx']


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

