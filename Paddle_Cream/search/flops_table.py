"""FLOPs of any path, from a lookup table measured on the built hypernetwork."""
from typing import Dict, Sequence, Tuple

import paddle

from pimm.utils import MacCounter

from ..models.hypernet import HyperNet
from ..models.search_space import CHOICES

__all__ = ['PathFlops']


class PathFlops:
    """Conv + linear MACs (in millions) of each choice block at its real input shape, plus the
    fixed parts (stem, stages 0 and 6, head, classifier): ``flops(path)`` is a sum of lookups."""

    def __init__(self, hypernet: HyperNet, resolution: int):
        self.resolution = resolution
        self.layer_flops: Dict[Tuple[int, int, int], float] = {}
        was_training = hypernet.training
        hypernet.eval()
        x = paddle.zeros([1, 3, resolution, resolution])
        fixed = []
        with paddle.no_grad():
            for choice in range(len(CHOICES)):
                path = [[0]] + [[choice] * n for n in hypernet.sta_num] + [[0]]
                with MacCounter(hypernet) as counter:
                    hypernet(x, path)
                for s, layers in enumerate(hypernet.sta_num):
                    for l in range(layers):
                        block = hypernet.blocks[s + 1][l][choice]
                        self.layer_flops[(s + 1, l, choice)] = counter.total(block) / 1e6
                searched = sum(self.layer_flops[(s + 1, l, choice)] for s, n in enumerate(hypernet.sta_num)
                               for l in range(n))
                fixed.append(counter.total() / 1e6 - searched)
        if was_training:
            hypernet.train()
        self.fixed_flops = fixed[0]

    def bounds(self) -> Tuple[float, float]:
        """MFLOPs of the cheapest and of the most expensive path."""
        per_layer: Dict[Tuple[int, int], list] = {}
        for (stage, layer, _), value in self.layer_flops.items():
            per_layer.setdefault((stage, layer), []).append(value)
        return (self.fixed_flops + sum(min(v) for v in per_layer.values()),
                self.fixed_flops + sum(max(v) for v in per_layer.values()))

    def flops(self, path: Sequence[Sequence[int]]) -> float:
        """MFLOPs (conv + linear MACs / 1e6) of ``path`` at this resolution."""
        return self.fixed_flops + sum(self.layer_flops[(s, l, c)] for s in range(1, len(path) - 1)
                                      for l, c in enumerate(path[s]))
