"""``data_parallel``: one process gets the network itself; SYNC_BN's conversion keeps every parameter."""
import paddle

from Paddle_Cream.engine.distributed import data_parallel, sync_batch_norm
from Paddle_Cream.models import ChildNet
from pimm.models.layers.norm import SyncBatchNorm

ARCH = [[0], [3], [3], [3, 1], [3], [3], [0]]


def test_one_process_trains_the_network_itself():
    net = ChildNet(ARCH, num_classes=10)
    assert data_parallel(net, 1, sync_bn=True) is net


def test_sync_batchnorm_conversion_keeps_names_and_tensors():
    """SYNC_BN converts before DataParallel; optimizers, EMA and checkpoints hold the network's tensors,
    so the conversion must keep every state-dict name and reuse (not copy) every tensor."""
    net = ChildNet(ARCH, num_classes=10)
    before = {name: id(t) for name, t in net.state_dict().items()}
    norms = [(m._momentum, m._epsilon) for m in net.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    converted = sync_batch_norm(net)
    assert converted is net
    assert any(isinstance(m, SyncBatchNorm) for m in net.sublayers())
    assert not any(type(m).__name__ == 'BatchNorm2d' for m in net.sublayers())
    assert {name: id(t) for name, t in net.state_dict().items()} == before
    assert [(m._momentum, m._epsilon) for m in net.sublayers() if isinstance(m, paddle.nn.SyncBatchNorm)] == norms
    assert norms[0] == (0.9, 1e-5)  # PyTorch's momentum 0.1 in Paddle's convention
