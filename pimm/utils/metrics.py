"""Running averages, top-k accuracy and the cross-process mean of a tensor."""
from typing import List, Sequence, Union

import paddle
import paddle.distributed as dist

__all__ = ['AverageMeter', 'accuracy', 'reduce_tensor']


class AverageMeter:
    """Current value, sum, count and average of a stream of (value, weight) updates."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val: Union[float, int], n: int = 1) -> None:
        """Add ``val`` with weight ``n`` (e.g. a batch mean and the batch size)."""
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count if self.count else 0


def accuracy(output: paddle.Tensor, target: paddle.Tensor, topk: Sequence[int] = (1,)) -> List[paddle.Tensor]:
    """Top-k accuracy in percent for each k, as 0-d float32 tensors.

    ``output``: logits (N, C); ``target``: class indices, shape (N,) or (N, 1). k above C counts as C.
    """
    maxk = min(max(topk), output.shape[1])
    batch_size = output.shape[0]
    _, pred = paddle.topk(output, k=maxk, axis=1, largest=True, sorted=True)
    correct = pred == target.reshape([-1, 1]).astype(pred.dtype)  # (N, maxk)
    return [correct[:, :min(k, maxk)].astype('float32').sum() * 100. / batch_size for k in topk]


def reduce_tensor(tensor: paddle.Tensor, world_size: int) -> paddle.Tensor:
    """The mean of ``tensor`` over ``world_size`` processes (all-reduce sum / n); a copy when not distributed."""
    result = tensor.clone()
    if world_size > 1 and dist.is_initialized():
        dist.all_reduce(result, op=dist.ReduceOp.SUM)
        result = result / world_size
    return result
