"""EvolutionSearch with a synthetic score: finds the optimum, respects the limits (FLOPs, and latency from a
synthetic table), scores each path once."""
import itertools

import pytest

from latency import synthetic_table
from Paddle_Cream.search import PathLatency
from Paddle_Cream.search.evolution import EvolutionSearch

STA = [1, 1, 2, 1, 1]


def flops(path):
    # choice c costs c + 1 per layer: the all-5 path (the best score) is over the limit below
    return 10. + sum(c + 1 for stage in path[1:-1] for c in stage)


def score(path):
    return float(sum(c for stage in path[1:-1] for c in stage))


def all_paths():
    for choices in itertools.product(range(6), repeat=sum(STA)):
        path, i = [[0]], 0
        for n in STA:
            path.append(list(choices[i:i + n]))
            i += n
        yield path + [[0]]


def make(seed=0, limit=40., **kw):
    args = dict(population=20, top_k=5, mutation_num=10, crossover_num=10, generations=15, seed=seed)
    args.update(kw)
    return EvolutionSearch(STA, flops, limit, **args)


def test_finds_the_optimum_within_the_limit_and_scores_each_path_once():
    calls = []

    def counted(path):
        calls.append(tuple(map(tuple, path)))
        return score(path)
    search = make()
    best, best_score, history = search.run(counted)
    optimum = max(score(p) for p in all_paths() if flops(p) <= 40.)
    assert flops(best) <= 40.
    assert best_score == score(best) >= optimum - 1     # near-optimal (optimum 23)
    assert len(calls) == len(set(calls))                 # never twice
    assert all(flops([list(s) for s in c]) <= 40. for c in calls)
    assert best_score == max(search.scores.values())     # the best ever evaluated
    assert len(history) == 15 and history[-1]['best_so_far'] == best_score
    assert [h['best_so_far'] for h in history] == sorted(h['best_so_far'] for h in history)
    assert len(history[0]['top_k']) == 5


def test_deterministic_per_seed():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    ra, rb = a.run(score), b.run(score)
    c.run(score)
    assert ra == rb and list(a.scores) == list(b.scores)
    assert list(a.scores) != list(c.scores)


def test_mutation_and_crossover_children_stay_in_the_space():
    search = make()
    parents = [tuple(map(tuple, p)) for p in itertools.islice(all_paths(), 0, 200, 37)]
    for _ in range(50):
        for child in (search._mutate(parents), search._crossover(parents)):
            assert [len(s) for s in child[1:-1]] == STA and child[0] == (0,) and child[-1] == (0,)
            assert all(0 <= c < 6 for s in child for c in s)


def test_mutation_probability_zero_gives_no_new_children():
    search = make(mutation_prob=0., crossover_num=0, population=5, generations=2)
    search.run(score)
    assert len(search.scores) <= 10


def test_impossible_limit_and_bad_arguments():
    with pytest.raises(RuntimeError, match='no path within'):
        make(limit=5.).run(score)
    with pytest.raises(ValueError):
        make(mutation_prob=2.)
    with pytest.raises(ValueError):
        EvolutionSearch([1, 1], flops, 40.)


def latency_table():
    """Block ms 0.1 * (choice + 1) + 0.01 * stage + 0.001 * layer, fixed parts 1.5 ms: the better a path
    scores, the slower it is."""
    return PathLatency(synthetic_table(STA))


def by_hand_ms(path):
    return 1.5 + sum(0.1 * (c + 1) + 0.01 * s + 0.001 * layer for s in range(1, 6) for layer, c in enumerate(path[s]))


def test_a_latency_limit_is_never_exceeded_by_an_evaluated_path():
    table = latency_table()
    fastest, slowest = table.bounds()
    limit = fastest + 0.4 * (slowest - fastest)
    calls = []

    def counted(path):
        calls.append(path)
        return score(path)
    search = make(limit=1e9, latency_fn=table.predict, latency_limit=limit)
    best, best_score, history = search.run(counted)
    assert calls and all(by_hand_ms(p) <= limit + 1e-9 for p in calls)
    assert all(table.predict(p) == pytest.approx(by_hand_ms(p)) for p in calls[:5])
    optimum = max(score(p) for p in all_paths() if by_hand_ms(p) <= limit)
    assert best_score >= optimum - 1 and by_hand_ms(best) <= limit
    for entry in history[-1]['top_k']:
        assert entry['latency_ms'] == pytest.approx(by_hand_ms(entry['arch'])) and entry['latency_ms'] <= limit
    # the limit binds: without it the same search goes past it
    free = make(limit=1e9, latency_fn=table.predict)
    free.run(score)
    assert max(by_hand_ms(list(map(list, k))) for k in free.scores) > limit


def test_without_a_latency_limit_the_search_is_unchanged():
    table = latency_table()
    plain = make(seed=3)
    plain_result = plain.run(score)
    assert 'latency_ms' not in plain_result[2][0]['top_k'][0]
    for kwargs in (dict(latency_fn=table.predict), dict(latency_fn=table.predict, latency_limit=table.bounds()[1])):
        other = make(seed=3, **kwargs)
        result = other.run(score)
        assert list(other.scores) == list(plain.scores) and result[:2] == plain_result[:2]
        assert result[2][-1]['top_k'][0]['latency_ms'] == pytest.approx(by_hand_ms(result[0]))


def test_impossible_latency_limit_and_a_limit_without_latency():
    table = latency_table()
    with pytest.raises(RuntimeError, match='latency limit'):
        make(latency_fn=table.predict, latency_limit=table.bounds()[0] - 0.01).run(score)
    with pytest.raises(ValueError, match='latency_fn'):
        make(latency_limit=5.)
