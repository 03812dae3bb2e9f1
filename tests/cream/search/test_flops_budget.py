"""search_for_layer against the expected answers of the official procedure (docs/reference.md §4)."""
import pytest

from Paddle_Cream.search import load_flops_op_table, search_for_layer


@pytest.mark.parametrize('budget, sta_num, resolution', [
    ((0, 600), [4, 4, 4, 4, 4], 224),
    ((0, 200), [1, 1, 3, 2, 1], 224),
    ((0, 150), [1, 1, 2, 1, 1], 224),
    ((100, 300), [1, 2, 3, 3, 3], 224),
    ((0, 50), [1, 1, 1, 1, 1], 160),
    ((0, 20), [1, 1, 1, 1, 1], 96),
])
def test_spec_budgets(budget, sta_num, resolution):
    assert search_for_layer(*budget) == (sta_num, resolution)


@pytest.mark.parametrize('budget', [(600, 900), (0, 1), (300, 200)])
def test_impossible_budgets_name_the_budget(budget):
    with pytest.raises(ValueError, match=rf'\[{budget[0]}, {budget[1]}\]'):
        search_for_layer(*budget)


def test_table_shape():
    table = load_flops_op_table()
    assert sorted(table) == list(range(5))
    assert all(sorted(table[s]) == list(range(6)) and all(len(v) == 2 for v in table[s].values()) for s in table)


def test_monotone_in_maximum():
    """A larger maximum never gives a shallower hypernetwork at the same resolution."""
    prev = None
    for hi in range(70, 700, 10):
        sta, res = search_for_layer(0, hi)
        if prev and prev[1] == res:
            assert all(a >= b for a, b in zip(sta, prev[0]))
        prev = (sta, res)


def _whole_table():
    """Every stage: 1 MFLOP for choice 0, 10 for choice 5 (either stride), other choices in between."""
    return {s: {c: (float(1 + 9 * c // 5), float(1 + 9 * c // 5)) for c in range(6)} for s in range(5)}


@pytest.mark.parametrize('budget, sta_num', [
    # 50 (five choice-5 layers) + 10: the first growth step lands exactly on the maximum
    pytest.param((0, 60), [1, 1, 2, 1, 1], id='growth-on-maximum'),
    pytest.param((0, 59.5), [1, 1, 1, 1, 1], id='just-below'),
    # five growth steps (stage 2 twice, stage 3 twice, then stage 4): 50 + 5 * 10 = 100
    pytest.param((0, 100), [1, 1, 3, 3, 2], id='fifth-step-on-maximum'),
    # the smallest network (5 x 1) exactly on the maximum keeps 224 px
    pytest.param((0, 5), [1, 1, 1, 1, 1], id='smallest-on-maximum'),
    # the largest network (5 x 10) exactly on the minimum needs no extra layer
    pytest.param((50, 50), [1, 1, 1, 1, 1], id='largest-on-minimum'),
])
def test_a_hypernetwork_exactly_at_the_budget_fits(budget, sta_num):
    """The growth walk's maximum (and minimum) are inclusive, against sums worked out by hand on a table of
    whole MFLOPs (exact in float64, no tolerance): a layer whose addition lands exactly on the maximum is added."""
    assert search_for_layer(*budget, table=_whole_table()) == (sta_num, 224)
