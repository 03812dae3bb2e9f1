"""The ONNX file of an exported Paddle model (``paddle2onnx``), read by ONNX Runtime and OpenVINO."""
import contextlib
import os
import sys
import tempfile
from typing import Iterator, List

__all__ = ['OnnxExportError', 'export_onnx']


class OnnxExportError(Exception):
    """paddle2onnx could not convert the network (one line)."""


@contextlib.contextmanager
def _held_native_output(lines: List[str]) -> Iterator[None]:
    """Send what native code writes to file descriptors 1 and 2 to a temporary file; its lines go to ``lines``.

    paddle2onnx's C++ logger writes three lines per conversion straight to the descriptors, which breaks
    progress bars when a latency table converts a hundred parts; the caller shows the lines only on failure.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            lines.extend(line.strip() for line in sink.read().decode(errors='replace').splitlines() if line.strip())


def _cause(log: List[str]) -> str:
    """The last line of paddle2onnx's log that is not its routine progress, as the reason for a failure."""
    routine = ('Start parsing', 'Use opset_version', 'exported as ONNX format now')
    reasons = [line for line in log if not any(r in line for r in routine)]
    return f': {reasons[-1]}' if reasons else ' (it logged no reason)'


def export_onnx(graph: str, params: str, file: str, opset: int = 13) -> str:
    """Convert the files of :func:`~pimm.inference.save_inference_model` into ``file``; returns it."""
    import paddle2onnx
    log: List[str] = []
    # the model bytes come back (save_file None): paddle2onnx's own file writing runs an optimiser that
    # pip-installs onnx_graphsurgeon at run time
    try:
        with _held_native_output(log):
            model = paddle2onnx.export(graph, params, save_file=None, opset_version=opset,
                                       enable_onnx_checker=True)
    except Exception as e:  # paddle2onnx logs the cause and fails with whatever it hit
        raise OnnxExportError(f'paddle2onnx could not convert the network at opset {opset}: {e}'
                              f'{_cause(log) if not str(e) else ""}') from None
    if not model:
        raise OnnxExportError(f'paddle2onnx could not convert the network at opset {opset}{_cause(log)}')
    with open(file, 'wb') as f:
        f.write(model)
    return file
