"""Which hypernetwork fits a FLOPs budget: layers per searched stage and input resolution (docs/reference.md §4)."""
import json
from typing import Dict, List, Optional, Tuple

from ..models.search_space import NUM_SEARCHED_STAGES, data_text

__all__ = ['load_flops_op_table', 'search_for_layer', 'GROWTH_ORDER', 'GROWTH_LIMITS']

# the official growth walk: stage (among the searched ones) to deepen next, and its layer limit at that step
GROWTH_ORDER = (2, 3, 4, 1, 0, 2, 3, 4, 1, 0)
GROWTH_LIMITS = (3, 3, 3, 2, 2, 4, 4, 4, 4, 4)
FlopsTable = Dict[int, Dict[int, Tuple[float, float]]]


def load_flops_op_table(path: Optional[str] = None) -> FlopsTable:
    """``table[stage][choice] = (MFLOPs at stride 1, MFLOPs at stride 2)``, the official per-op table."""
    if path:
        with open(path) as f:
            raw = json.load(f)
    else:
        raw = json.loads(data_text('cream_flops_op_table.json'))
    return {int(s): {int(c): tuple(v) for c, v in choices.items()} for s, choices in raw.items()}


def search_for_layer(flops_minimum: float, flops_maximum: float,
                     table: Optional[FlopsTable] = None) -> Tuple[List[int], int]:
    """``(sta_num, resolution)`` for a budget in MFLOPs, exactly as the official procedure.

    Too small a budget lowers the resolution (224 -> 192 -> ... -> 64, the bounds
    growing by 7/factor at each step, compounding); too large a minimum deepens
    stages along the growth order first. Then stages deepen along the growth
    order while the largest network still fits the maximum. ``ValueError``
    names the budget when no hypernetwork fits.
    """
    if flops_minimum > flops_maximum:
        raise ValueError(f'FLOPs budget [{flops_minimum}, {flops_maximum}]M: the minimum exceeds the maximum')
    table = table or load_flops_op_table()
    stages = range(NUM_SEARCHED_STAGES)
    sta_num = [1] * NUM_SEARCHED_STAGES
    factor = 7
    base_min = sum(table[i][0][0] for i in stages)
    base_max = sum(table[i][5][0] for i in stages)
    lo, hi = float(flops_minimum), float(flops_maximum)
    impossible = ValueError(f'FLOPs budget [{flops_minimum}, {flops_maximum}]M is impossible for the Cream search '
                            f'space (its smallest network needs {base_min:.1f}M at 224px, scaled down to 64px at most)')
    if base_min > hi:
        while base_min > hi and factor >= 2:
            factor -= 1
            lo, hi = lo * 7. / factor, hi * 7. / factor
        if factor < 2:
            raise impossible
    elif base_max < lo:
        step = 0
        while base_max < lo and step <= 9:
            stage = GROWTH_ORDER[step]
            if sta_num[stage] >= GROWTH_LIMITS[step]:
                step += 1
                continue
            base_max += table[stage][5][1]
            sta_num[stage] += 1
        if step > 7 and base_max < lo:
            raise ValueError(f'FLOPs budget [{flops_minimum}, {flops_maximum}]M is impossible for the Cream search '
                             f'space (its largest network has {base_max:.1f}M, below the minimum)')
    step = 0
    while step <= 9:
        stage = GROWTH_ORDER[step]
        if sta_num[stage] >= GROWTH_LIMITS[step]:
            step += 1
            continue
        base_max += table[stage][5][1]
        if base_max > hi:
            break
        sta_num[stage] += 1
    return sta_num, factor * 32
