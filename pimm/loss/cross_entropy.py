"""Cross-entropy losses with label smoothing or soft (mixed) targets, as in timm."""
import numbers

import paddle
import paddle.nn.functional as F

__all__ = ['LabelSmoothingCrossEntropy', 'SoftTargetCrossEntropy']


class LabelSmoothingCrossEntropy(paddle.nn.Layer):
    """Mean over the batch of ``(1 - smoothing) * NLL(target) + smoothing * mean_k(-log p_k)``.

    ``x``: logits ``[N, K]``; ``target``: class indices ``[N]`` (int64).
    """

    def __init__(self, smoothing: float = 0.1) -> None:
        super().__init__()
        if not isinstance(smoothing, numbers.Real) or isinstance(smoothing, bool) or not 0. <= smoothing < 1.:
            raise ValueError(f'smoothing must be a number in [0, 1), got {smoothing!r}')
        self.smoothing = float(smoothing)
        self.confidence = 1. - self.smoothing

    def forward(self, x: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
        if x.ndim != 2 or target.ndim != 1 or target.shape[0] != x.shape[0]:
            raise ValueError(f'expected logits [N, K] and class indices [N], got {list(x.shape)} and '
                             f'{list(target.shape)}')
        log_probs = F.log_softmax(x, axis=-1)
        nll = -paddle.take_along_axis(log_probs, target.astype('int64').unsqueeze(-1), axis=-1).squeeze(-1)
        smooth = -log_probs.mean(axis=-1)
        return (self.confidence * nll + self.smoothing * smooth).mean()

    def extra_repr(self) -> str:
        return f'smoothing={self.smoothing}'


class SoftTargetCrossEntropy(paddle.nn.Layer):
    """Mean over the batch of ``sum_k -target_k * log softmax(x)_k`` (targets e.g. from Mixup).

    ``x``: logits ``[N, K]``; ``target``: class probabilities of the same shape.
    """

    def forward(self, x: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
        if list(x.shape) != list(target.shape):
            raise ValueError(f'logits and soft targets must have the same shape, got {list(x.shape)} and '
                             f'{list(target.shape)}')
        return (-target * F.log_softmax(x, axis=-1)).sum(axis=-1).mean()
