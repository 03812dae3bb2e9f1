"""PathSampler and UniformFlopsSampler with a synthetic FLOPs function and latency table (fast, no network)."""
import numpy as np
import pytest

from latency import synthetic_table
from Paddle_Cream.search import PathLatency
from Paddle_Cream.search.board import PrioritizedBoard
from Paddle_Cream.search.sampler import DEFAULT_PRE_PROB, BudgetError, PathSampler, UniformFlopsSampler

STA_NUM = [2, 2, 3, 2, 1]


def toy_flops(path):
    """10 MFLOPs per choice index step plus 10 per layer."""
    return float(sum(10 * (c + 1) for stage in path[1:-1] for c in stage))


def _frequencies(paths):
    choices = np.array([c for p in paths for stage in p[1:-1] for c in stage])
    return np.bincount(choices, minlength=6) / choices.size


def test_choice_frequencies_follow_pre_prob():
    sampler = PathSampler(STA_NUM, toy_flops, 0, 1e9, how_to_prob='pre_prob', seed=1)
    freq = _frequencies([sampler.sample()[0] for _ in range(1500)])  # 15000 layers
    np.testing.assert_allclose(freq, DEFAULT_PRE_PROB, atol=0.015)


def test_even_is_uniform_and_paths_are_valid():
    sampler = PathSampler(STA_NUM, toy_flops, 0, 1e9, how_to_prob='even', seed=2)
    paths = [sampler.sample()[0] for _ in range(1500)]
    np.testing.assert_allclose(_frequencies(paths), np.full(6, 1 / 6), atol=0.015)
    assert all(p[0] == [0] and p[-1] == [0] and [len(s) for s in p[1:-1]] == STA_NUM for p in paths)


def test_budget_is_always_respected():
    sampler = PathSampler(STA_NUM, toy_flops, 300, 350, how_to_prob='pre_prob', seed=3)
    for _ in range(300):
        path, flops = sampler.sample()
        assert 300 <= flops <= 350 and flops == toy_flops(path)


def test_unreachable_budget_raises_naming_it():
    sampler = PathSampler(STA_NUM, toy_flops, 1000, 2000, seed=0, max_tries=50)
    with pytest.raises(RuntimeError, match=r'\[1000.0, 2000.0\]'):
        sampler.sample()


def test_equal_seeds_draw_equal_paths_and_state_round_trip():
    a = PathSampler(STA_NUM, toy_flops, 200, 400, how_to_prob='pre_prob', seed=7)
    b = PathSampler(STA_NUM, toy_flops, 200, 400, how_to_prob='pre_prob', seed=7)
    assert [a.sample() for _ in range(20)] == [b.sample() for _ in range(20)]
    state = a.state_dict()
    expected = [a.sample() for _ in range(20)]
    c = PathSampler(STA_NUM, toy_flops, 200, 400, how_to_prob='pre_prob', seed=99)
    c.load_state_dict(state)
    assert [c.sample() for _ in range(20)] == expected


def test_teacher_mode_follows_board_frequencies():
    sampler = PathSampler(STA_NUM, toy_flops, 0, 1e9, how_to_prob='teacher', seed=4)
    board = PrioritizedBoard(pool_size=2)
    np.testing.assert_allclose(sampler.choice_prob(board), np.full(6, 1 / 6))  # empty: uniform
    slice_inputs, labels = np.zeros((1, 3, 4, 4), 'float32'), np.zeros((1, 3), 'float32')
    board.admit(50., 1., [[0], [1, 1], [1, 3], [3, 3, 3], [1, 1], [3], [0]], slice_inputs, labels)
    board.admit(40., 1., [[0], [5, 5], [1, 1], [1, 1, 1], [3, 3], [3], [0]], slice_inputs, labels)
    np.testing.assert_allclose(sampler.choice_prob(board), board.choice_frequencies())
    freq = _frequencies([sampler.sample(board)[0] for _ in range(1000)])
    np.testing.assert_allclose(freq, board.choice_frequencies(), atol=0.02)
    assert freq[0] == freq[2] == freq[4] == 0


@pytest.mark.parametrize('kwargs, match', [
    (dict(how_to_prob='uniform'), 'how_to_prob'),
    (dict(how_to_prob='pre_prob', pre_prob=(0.5, 0.5)), 'pre_prob'),
    (dict(how_to_prob='pre_prob', pre_prob=(0.5, -0.1, 0.2, 0.2, 0.1, 0.1)), 'pre_prob'),
    (dict(how_to_prob='pre_prob', pre_prob=(0, 0, 0, 0, 0, 0)), 'pre_prob'),
])
def test_invalid_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PathSampler(STA_NUM, toy_flops, 0, 1e9, **kwargs)


def test_pre_prob_is_normalised():
    sampler = PathSampler(STA_NUM, toy_flops, 0, 1e9, how_to_prob='pre_prob', pre_prob=(2, 0, 0, 2, 0, 0))
    np.testing.assert_allclose(sampler.choice_prob(), [0.5, 0, 0, 0.5, 0, 0])


def test_spos_sampler_spreads_flops_over_the_bins():
    low, high = 200., 410.  # uniform paths concentrate near 350; the bins must flatten that
    sampler = UniformFlopsSampler(STA_NUM, toy_flops, low, high, seed=5)
    flops = np.array([sampler.sample()[1] for _ in range(700)])
    assert np.all((flops >= low) & (flops <= high))
    counts = np.histogram(flops, bins=np.linspace(low, high, 8))[0]
    assert counts.min() > 60 and counts.max() < 140, counts  # expected 100 each
    a = UniformFlopsSampler(STA_NUM, toy_flops, low, high, seed=6)
    b = UniformFlopsSampler(STA_NUM, toy_flops, low, high, seed=6)
    assert [a.sample() for _ in range(10)] == [b.sample() for _ in range(10)]


def test_spos_sampler_falls_back_to_the_whole_budget():
    # a 5-layer toy path reaches at most 300 MFLOPs: the bins above it always fall back
    sampler = UniformFlopsSampler([1, 1, 1, 1, 1], toy_flops, 50, 400, seed=0, max_misses=5)
    flops = [sampler.sample()[1] for _ in range(50)]
    assert all(50 <= f <= 300 for f in flops)  # 300 is the maximum a 5-layer toy path reaches


def _table():
    """Latency not monotonic in the choice (unlike toy_flops), with a correction: paths from 6.9 to 14.5 ms."""
    def block_ms(stage, layer, choice):
        return [0.3, 0.5, 0.35, 0.6, 0.4, 0.8][choice] * (1.0 + 0.1 * stage) + 0.02 * layer
    return PathLatency(synthetic_table(STA_NUM, block_ms=block_ms, scale=1.2, offset_ms=0.3))


LATENCY = (8.5, 11.0)   # ms: about 12% of uniform paths miss it, 7% of those within FLOPs [300, 450]
SAMPLERS = {
    'cream': lambda table, lo, hi, **kw: PathSampler(STA_NUM, toy_flops, lo, hi, seed=8, **kw),
    'cream pre_prob': lambda table, lo, hi, **kw: PathSampler(STA_NUM, toy_flops, lo, hi, how_to_prob='pre_prob',
                                                              seed=9, **kw),
    'spos': lambda table, lo, hi, **kw: UniformFlopsSampler(STA_NUM, toy_flops, lo, hi, seed=10, **kw),
}


@pytest.mark.parametrize('name', SAMPLERS)
@pytest.mark.parametrize('flops_budget', [(0, np.inf), (300, 450)])
def test_samplers_never_leave_a_latency_budget(name, flops_budget):
    table = _table()
    sampler = SAMPLERS[name](table, *flops_budget, latency_fn=table.predict, latency_minimum=LATENCY[0],
                             latency_maximum=LATENCY[1])
    for _ in range(400):
        path, flops = sampler.sample()
        assert LATENCY[0] <= table.predict(path) <= LATENCY[1], path
        assert flops == toy_flops(path) and flops_budget[0] <= flops <= flops_budget[1]
    unbudgeted = PathSampler(STA_NUM, toy_flops, *flops_budget, seed=1)
    latencies = [table.predict(unbudgeted.sample()[0]) for _ in range(400)]
    assert not all(LATENCY[0] <= ms <= LATENCY[1] for ms in latencies)   # the budget did turn paths away


def test_a_latency_budget_spends_no_random_numbers():
    """Every path meets this budget, so the draws are those of the sampler without one, seed for seed."""
    table = _table()
    plain = PathSampler(STA_NUM, toy_flops, 200, 400, how_to_prob='pre_prob', seed=7)
    budgeted = PathSampler(STA_NUM, toy_flops, 200, 400, how_to_prob='pre_prob', seed=7, latency_fn=table.predict,
                           latency_maximum=100.)
    assert [plain.sample() for _ in range(50)] == [budgeted.sample() for _ in range(50)]


def test_unreachable_latency_budget_names_both_budgets():
    table = _table()
    sampler = PathSampler(STA_NUM, toy_flops, 0, 1e9, seed=0, max_tries=50, latency_fn=table.predict,
                          latency_minimum=1., latency_maximum=2.)
    with pytest.raises(BudgetError, match=r'FLOPs budget \[0.0, 1000000000.0\] MFLOPs and the latency budget '
                                          r'\[1.0, 2.0\] ms after 50 draws'):
        sampler.sample()
    assert issubclass(BudgetError, RuntimeError)   # callers catching the old RuntimeError still do


def test_spos_bins_spread_latency_under_a_latency_budget():
    table = _table()
    sampler = UniformFlopsSampler(STA_NUM, toy_flops, 0, 1e9, seed=5, latency_fn=table.predict,
                                  latency_minimum=LATENCY[0], latency_maximum=LATENCY[1])
    latencies = [table.predict(sampler.sample()[0]) for _ in range(700)]
    counts = np.histogram(latencies, bins=np.linspace(*LATENCY, 8))[0]
    assert counts.min() > 60 and counts.max() < 140, counts  # expected 100 each


@pytest.mark.parametrize('budget', [dict(), dict(latency_maximum=np.inf), dict(latency_minimum=3., latency_maximum=2.),
                                    dict(latency_minimum=-1., latency_maximum=2.)])
def test_a_latency_fn_needs_a_finite_budget(budget):
    with pytest.raises(ValueError, match='latency budget'):
        PathSampler(STA_NUM, toy_flops, 0, 1e9, latency_fn=_table().predict, **budget)


def test_spos_bins_need_a_finite_range():
    with pytest.raises(ValueError, match='finite'):
        UniformFlopsSampler(STA_NUM, toy_flops, 0, np.inf)


CONCENTRATED = (0.02, 0.02, 0.02, 0.9, 0.02, 0.02)   # the demo's prior: choice 3 nearly always


@pytest.mark.parametrize('method', ['cream', 'spos'])
def test_a_prior_that_rarely_meets_a_tight_budget_still_gets_paths_within_it(method):
    """The demo's failure: prior 0.9 on choice 3 (0.6 ms each) and a budget the all-3 path misses by far. The
    rejection draws miss every time (max_tries 20); the layer-by-layer draw then gives paths within both
    budgets, and still leans to the prior's choice among those that fit."""
    table = _table()
    all_three = [[0]] + [[3] * n for n in STA_NUM] + [[0]]
    budget = (0., 0.85 * table.predict(all_three))
    if method == 'cream':
        sampler = PathSampler(STA_NUM, toy_flops, 0, 400, how_to_prob='pre_prob', pre_prob=CONCENTRATED, seed=4,
                              max_tries=20, latency_fn=table.predict, latency_maximum=budget[1])
    else:
        sampler = UniformFlopsSampler(STA_NUM, toy_flops, 0, 400, seed=4, max_tries=20, max_misses=20,
                                      latency_fn=table.predict, latency_maximum=budget[1])
    rejected = sum(table.predict(sampler._draw(np.array(CONCENTRATED))) <= budget[1] for _ in range(200))
    assert method == 'spos' or rejected == 0   # the prior alone (almost) never meets the budget
    paths = [sampler.sample() for _ in range(300)]
    assert all(table.predict(p) <= budget[1] and f <= 400 and f == toy_flops(p) for p, f in paths)
    freq = _frequencies([p for p, _ in paths])
    if method == 'cream':
        assert freq.argmax() == 3 and freq[3] > 0.3   # still the prior's favourite where it fits


def test_the_layer_by_layer_draw_is_seeded_and_resumes_exactly():
    table = _table()
    limit = 0.85 * table.predict([[0]] + [[3] * n for n in STA_NUM] + [[0]])

    def make(seed):
        return PathSampler(STA_NUM, toy_flops, 0, 400, how_to_prob='pre_prob', pre_prob=CONCENTRATED, seed=seed,
                           max_tries=20, latency_fn=table.predict, latency_maximum=limit)
    a, b = make(5), make(5)
    assert [a.sample() for _ in range(10)] == [b.sample() for _ in range(10)]
    c = make(6)
    c.load_state_dict(a.state_dict())
    assert [c.sample() for _ in range(10)] == [a.sample() for _ in range(10)]


def test_no_layer_by_layer_draw_for_a_measure_that_is_not_a_sum_over_layers():
    """A FLOPs function with an interaction between layers cannot be bounded layer by layer: the sampler keeps
    to rejection draws and says when they miss."""
    def interacting(path):
        return toy_flops(path) + 500 * (path[1][0] == path[2][0] == 5)
    sampler = PathSampler(STA_NUM, interacting, 1000, 1100, seed=0, max_tries=30)
    with pytest.raises(BudgetError, match='after 30 draws'):
        sampler.sample()
    assert sampler._layer_costs is None


def _choice_sum_flops(path):
    """100 MFLOPs of fixed parts plus 1 per choice index step, on every searched layer."""
    return float(100 + sum(c for stage in path[1:-1] for c in stage))


@pytest.mark.parametrize('budget, choice_sum', [pytest.param((124.5, 125.), 25, id='on-maximum'),
                                                pytest.param((100., 100.5), 0, id='on-minimum'),
                                                pytest.param((113., 113.), 13, id='on-both')])
@pytest.mark.parametrize('method', ['cream', 'spos'])
def test_a_path_exactly_at_the_flops_maximum_or_minimum_is_sampled(method, budget, choice_sum):
    """The budget is closed at both ends. On 5 layers at 100 + (sum of the choice indices) MFLOPs, the only
    path within [124.5, 125] is the all-5 one, exactly on the maximum (100 + 5 * 5, by hand); the only one in
    [100, 100.5] the all-0 one, exactly on the minimum; in [113, 113] every path with indices summing to 13.
    Whole numbers in float64: compared exactly. Few draws (50) before the layer-by-layer draw takes over."""
    if method == 'cream':
        sampler = PathSampler([1] * 5, _choice_sum_flops, *budget, how_to_prob='even', seed=0, max_tries=50)
    else:
        sampler = UniformFlopsSampler([1] * 5, _choice_sum_flops, *budget, seed=0, max_misses=50, max_tries=50)
    for _ in range(5):
        path, flops = sampler.sample()
        assert path[0] == path[-1] == [0] and [len(stage) for stage in path[1:-1]] == [1] * 5
        assert sum(c for stage in path[1:-1] for c in stage) == choice_sum and flops == 100. + choice_sum
        if budget[0] != budget[1]:   # a single path fits: all-5 or all-0
            assert path[1:-1] == [[choice_sum // 5]] * 5


def test_the_samplers_default_prior_is_the_papers_pre_prob():
    """docs/reference.md §5 step 1: without a pre_prob the sampler draws from the official PRE_PROB, written out here
    (exact tuple; the normalised vector to 1e-12 absolute, the literal sums to 1 up to float rounding)."""
    paper = (0.05, 0.2, 0.05, 0.5, 0.05, 0.15)
    assert DEFAULT_PRE_PROB == paper
    sampler = PathSampler(STA_NUM, toy_flops, 0, 1e9, how_to_prob='pre_prob')
    np.testing.assert_allclose(sampler.choice_prob(), paper, rtol=0, atol=1e-12)
