"""Synthetic latency tables for tests: known block and fixed milliseconds, so a prediction can be
computed by hand."""
import json
from typing import Callable, Optional, Sequence

from Paddle_Cream.models.search_space import CHOICES, SEARCH_SPACE_ID
from Paddle_Cream.search.latency_table import STATISTIC, TABLE_KIND, TABLE_VERSION


def default_block_ms(stage: int, layer: int, choice: int) -> float:
    """A made-up cost growing with the choice (kernel and expansion), different at every position."""
    return 0.1 * (choice + 1) + 0.01 * stage + 0.001 * layer


def synthetic_table(sta_num: Sequence[int], resolution: int = 224, num_classes: int = 10,
                    block_ms: Callable[[int, int, int], float] = default_block_ms, stem_ms: float = 1.0,
                    head_ms: float = 0.5, scale: float = 1.0, offset_ms: float = 0.0, runtime: str = 'onnxruntime',
                    global_pool: str = 'avg', search_space: str = SEARCH_SPACE_ID) -> dict:
    """The JSON tree of a latency table as ``tools/main.py latency`` writes it, with the given numbers."""
    def timing(ms):
        return dict(median_ms=ms, p10_ms=ms, p25_ms=ms, p90_ms=ms, calls=1)
    blocks = [dict(stage=s + 1, layer=l, choice=c, input_shape=[1, 1, 1, 1], **timing(block_ms(s + 1, l, c)))
              for s, n in enumerate(sta_num) for l in range(n) for c in range(len(CHOICES))]
    valid_for = dict(search_space=search_space, sta_num=list(sta_num), resolution=resolution, num_classes=num_classes,
                     global_pool=global_pool, runtime=runtime, runtime_version='0', device='test CPU', gpu=False,
                     threads=1, batch_size=1, precision='fp32', tensorrt='off', date='2026-12-06T00:00:00')
    return dict(kind=TABLE_KIND, version=TABLE_VERSION, valid_for=valid_for, unit='ms', statistic=STATISTIC,
                fixed=dict(stem=timing(stem_ms), head=timing(head_ms)), blocks=blocks,
                correction=dict(scale=scale, offset_ms=offset_ms))


def write_table(file, sta_num: Sequence[int], table: Optional[dict] = None, **kwargs) -> str:
    """``synthetic_table(sta_num, **kwargs)`` (or ``table``) written to ``file``; returns the path."""
    with open(file, 'w') as f:
        json.dump(table if table is not None else synthetic_table(sta_num, **kwargs), f)
    return str(file)
