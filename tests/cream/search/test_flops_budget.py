"""search_for_layer against the expected answers of the official procedure (SPEC 4)."""
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
