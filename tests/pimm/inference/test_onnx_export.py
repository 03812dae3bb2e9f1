"""paddle2onnx's conversion: its native log is held back (progress bars stay whole) and shown on failure."""
import os

import numpy as np
import paddle
import pytest

import Paddle_Cream  # noqa: F401  (registers the cream networks)
import pimm
from pimm.inference import OnnxExportError, export_onnx, save_inference_model

ort = pytest.importorskip('onnxruntime', reason='onnxruntime is in requirements-dev.txt; not installed here')


def test_conversion_prints_nothing_and_onnx_runtime_gives_paddles_logits(tmp_path, capfd):
    paddle.seed(0)
    model = pimm.create_model('cream_14', num_classes=10).eval()
    graph, params = save_inference_model(model, str(tmp_path / 'model'), 64)
    capfd.readouterr()
    out = export_onnx(graph, params, str(tmp_path / 'model.onnx'))
    printed = capfd.readouterr()
    assert printed.out == '' and printed.err == '', printed   # paddle2onnx alone prints 3 lines here
    x = np.random.RandomState(0).randn(2, 3, 64, 64).astype('float32')
    with paddle.no_grad():
        expected = model(paddle.to_tensor(x)).numpy()
    got = ort.InferenceSession(out, providers=['CPUExecutionProvider']).run(None, {'x': x})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_a_failed_conversion_names_the_cause_from_the_native_log(tmp_path, capfd, monkeypatch):
    import paddle2onnx

    def failing(*args, **kwargs):   # what paddle2onnx does: log to the descriptor, return nothing
        os.write(1, b'[Paddle2ONNX] Start parsing the Paddle model file...\n')
        os.write(2, b'[ERROR] Oops, there are some operators not supported yet, including roll,\n')
        return b''
    monkeypatch.setattr(paddle2onnx, 'export', failing)
    with pytest.raises(OnnxExportError) as raised:
        export_onnx('g.json', 'p.pdiparams', str(tmp_path / 'model.onnx'))
    assert str(raised.value) == ('paddle2onnx could not convert the network at opset 13: '
                                 '[ERROR] Oops, there are some operators not supported yet, including roll,')
    assert capfd.readouterr().out == '' and not os.path.exists(tmp_path / 'model.onnx')
    print('after')   # the descriptors are back
    assert capfd.readouterr().out == 'after\n'
