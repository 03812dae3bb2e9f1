"""A search checkpoint carries everything a resume needs, the AMP loss scale included."""
import os

import numpy as np
import paddle

from fake_gpu import built_as_on_gpu
from Paddle_Cream.config import load_config
from Paddle_Cream.engine.run_train import _save_epoch
from Paddle_Cream.engine.search_budget import SearchSpace
from Paddle_Cream.engine.search_setup import build_optimization, resume_if_asked
from Paddle_Cream.engine.train_state import CHECKPOINT_NAME, load_train_state
from Paddle_Cream.models.hypernet import HyperNet
from Paddle_Cream.search import MetaMatcher, PrioritizedBoard
from pimm.utils.amp import GradScaler

STA = [1, 1, 1, 1, 1]


def _parts(cfg, seed):
    paddle.seed(seed)
    net = HyperNet(STA, 10, resolution=32)
    optimizer, _, ema, _ = build_optimization(cfg, net, 4)
    return net, optimizer, ema, PrioritizedBoard(3), MetaMatcher(10, 4)


def test_amp_loss_scale_and_fused_state_survive_a_resume(monkeypatch, tmp_path):
    cfg = load_config('configs/demo/train.yaml', ['SAVE_PATH', str(tmp_path)])
    identity = dict(sta_num=STA, resolution=32, image_size=32, num_classes=10, method='cream')
    net, optimizer, ema, board, matcher = _parts(cfg, 0)
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024.)
    scaler._scale = scaler._scale * 0.25  # as after two overflows
    board.admit(50., 10., [[0]] + [[1]] * 5 + [[0]], np.ones([4, 3, 32, 32], 'float32'),
                np.full([4, 10], .1, 'float32'))
    space = SearchSpace(STA, 32, None, (cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM))  # FLOPs unused
    _save_epoch(str(tmp_path), cfg, 3, [], net, optimizer, ema, board, matcher, scaler, identity, space)
    path = os.path.join(str(tmp_path), CHECKPOINT_NAME)
    assert float(load_train_state(path)['amp_scaler']['scale'][0]) == 256.
    cfg = load_config('configs/demo/train.yaml', ['SAVE_PATH', str(tmp_path), 'RESUME_PATH', path])
    net2, optimizer2, ema2, board2, matcher2 = _parts(cfg, 1)
    scaler2 = built_as_on_gpu(GradScaler, init_loss_scaling=1024.)
    start, _ = resume_if_asked(cfg, identity, net2, optimizer2, ema2, board2, matcher2, scaler2, lambda _: None)
    assert start == 4 and float(scaler2._scale.numpy()[0]) == 256.
    optimizer2.fused.check()   # loaded in place: the fused storage is intact
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(net2.state_dict()[k].numpy(), v.numpy())
    assert board2.summary() == board.summary()
