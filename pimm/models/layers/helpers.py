"""Small numeric helpers shared by the layers."""
from typing import Optional

__all__ = ['make_divisible', 'to_2tuple']


def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None,
                   round_limit: float = 0.9) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (never below ``min_value``).

    If rounding down removed more than ``1 - round_limit`` of ``v``, one more
    ``divisor`` is added, as in the TF EfficientNet/MobileNet reference.
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def to_2tuple(x):
    """``x`` as a pair (a scalar is repeated)."""
    if isinstance(x, (tuple, list)):
        assert len(x) == 2, f'expected a pair, got {x}'
        return tuple(x)
    return (x, x)
