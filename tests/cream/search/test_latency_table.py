"""PathLatency: predictions from a table with known numbers, computed here by hand; its checks of what
the table is valid for; the correction's fit and the validation figures against numpy and scipy."""
import itertools
import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from latency import synthetic_table, write_table
from Paddle_Cream.models.search_space import CHOICES
from Paddle_Cream.search import LatencyTableError, PathLatency
from Paddle_Cream.search.latency_table import fit_correction, prediction_report

STA = [1, 1, 2, 1, 1]


def _block_ms(stage, layer, choice):
    return [0.3, 0.5, 0.35, 0.6, 0.4, 0.8][choice] * (1.0 + 0.1 * stage) + 0.02 * layer


def test_predict_is_the_sum_of_parts_then_the_correction():
    table = PathLatency(synthetic_table(STA, block_ms=_block_ms, stem_ms=1.25, head_ms=0.75, scale=1.1,
                                        offset_ms=-0.2))
    path = [[0], [5], [0], [3, 1], [2], [4], [0]]
    by_hand = 1.25 + 0.75 + (0.8 * 1.1) + (0.3 * 1.2) + (0.6 * 1.3) + (0.5 * 1.3 + 0.02) + (0.35 * 1.4) + (0.4 * 1.5)
    assert table.parts_ms(path) == pytest.approx(by_hand, rel=1e-12)
    assert table.predict(path) == pytest.approx(1.1 * by_hand - 0.2, rel=1e-12)
    assert (table.resolution, table.num_classes, table.sta_num, table.runtime, table.threads, table.batch_size) == \
        (224, 10, STA, 'onnxruntime', 1, 1)


def test_the_table_s_statistic_is_the_figure_read_and_compared():
    from pimm.inference import Timing
    tree = synthetic_table(STA, stem_ms=1.0, head_ms=0.5)
    for entry in [*tree['fixed'].values(), *tree['blocks']]:
        entry['median_ms'] *= 2   # the median differs: the lower quartile (the table's statistic) is read
    table = PathLatency(tree)
    path = [[0], [0], [0], [0, 0], [0], [0], [0]]
    assert table.statistic == 'p25_ms'
    assert table.predict(path) == pytest.approx(1.5 + sum(0.1 + 0.01 * s for s in (1, 2, 3, 3, 4, 5)) + 0.001)
    assert table.measured_ms(Timing(median_ms=3.0, p10_ms=1.0, p90_ms=4.0, calls=9, p25_ms=2.0)) == 2.0
    tree['statistic'] = 'mean_ms'
    with pytest.raises(LatencyTableError, match="'statistic' 'mean_ms' is not one of median_ms, p25_ms, p10_ms"):
        PathLatency(tree)


def test_bounds_and_extreme_paths_equal_a_brute_force_over_every_path():
    table = PathLatency(synthetic_table([1, 1, 1, 1, 1], block_ms=_block_ms, scale=0.9, offset_ms=0.3))
    every = [[[0]] + [[c] for c in combo] + [[0]] for combo in itertools.product(range(len(CHOICES)), repeat=5)]
    predicted = [table.predict(p) for p in every]
    assert table.bounds() == pytest.approx((min(predicted), max(predicted)), rel=1e-12)
    fastest, slowest = table.extreme_paths()
    assert table.predict(fastest) == pytest.approx(min(predicted)) and table.predict(slowest) == pytest.approx(
        max(predicted))


def test_a_path_of_other_layers_is_refused():
    table = PathLatency(synthetic_table(STA))
    with pytest.raises(ValueError, match='does not fit the table'):
        table.predict([[0], [0], [0], [0], [0], [0], [0]])


def test_load_reads_what_was_written_and_refuses_what_is_not_a_table(tmp_path):
    good = write_table(tmp_path / 'good.json', STA, block_ms=_block_ms)
    assert PathLatency.load(good).predict([[0], [1], [1], [1, 1], [1], [1], [0]]) > 0
    cases = {'missing.json': None, 'text.json': 'not json {', 'list.json': '[1, 2]',
             'other.json': json.dumps({'kind': 'something else'})}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(LatencyTableError) as e:
            PathLatency.load(str(tmp_path / name))
        assert '\n' not in str(e.value) and name in str(e.value)
    broken = synthetic_table(STA)
    broken['blocks'] = broken['blocks'][:-1]
    with pytest.raises(LatencyTableError, match='do not cover'):
        PathLatency(broken)
    for correction in ({'scale': -1.0, 'offset_ms': 0.0}, {'scale': float('nan'), 'offset_ms': 0.0}, {}):
        bad = synthetic_table(STA)
        bad['correction'] = correction
        with pytest.raises(LatencyTableError):
            PathLatency(bad)
    old = synthetic_table(STA)
    old['version'] = 0
    with pytest.raises(LatencyTableError, match='version'):
        PathLatency(old)


@pytest.mark.parametrize('setting, value', [('sta_num', [1, 1, 1, 1, 1]), ('resolution', 192), ('num_classes', 1000),
                                            ('global_pool', 'max'), ('search_space', 'other space')])
def test_check_fits_names_the_first_setting_that_differs(setting, value):
    table = PathLatency(synthetic_table(STA))
    table.check_fits(STA, 224, 10, 'avg')
    wanted = dict(search_space=table.search_space, sta_num=STA, resolution=224, num_classes=10, global_pool='avg')
    made = dict(wanted, **{setting: value})
    other = PathLatency(synthetic_table(made['sta_num'], resolution=made['resolution'],
                                        num_classes=made['num_classes'], global_pool=made['global_pool'],
                                        search_space=made['search_space']))
    with pytest.raises(LatencyTableError, match=setting):
        other.check_fits(STA, 224, 10, 'avg')


def test_the_digest_changes_with_the_content():
    a, b = synthetic_table(STA), synthetic_table(STA, stem_ms=1.01)
    assert PathLatency(a).digest() == PathLatency(synthetic_table(STA)).digest() != PathLatency(b).digest()


def test_fit_correction_recovers_a_known_line_and_minimises_relative_error():
    parts = np.array([3.0, 4.0, 5.5, 7.0, 9.0])
    scale, offset = fit_correction(parts, 1.3 * parts + 0.4)
    assert (scale, offset) == pytest.approx((1.3, 0.4), rel=1e-9)
    measured = 1.3 * parts + 0.4 + np.array([0.05, -0.1, 0.02, 0.08, -0.03])
    scale, offset = fit_correction(parts, measured)
    loss = lambda a, b: np.sum(((a * parts + b) - measured) ** 2 / measured ** 2)  # noqa: E731
    for da, db in itertools.product((-1e-3, 0, 1e-3), repeat=2):
        assert loss(scale, offset) <= loss(scale + da, offset + db) + 1e-15


def test_prediction_report_against_numpy_and_scipy():
    rng = np.random.RandomState(0)
    measured = rng.uniform(5, 10, size=30)
    predicted = measured * rng.uniform(0.85, 1.15, size=30)
    paths = [[[0], [i % 6], [0]] for i in range(30)]
    report = prediction_report(paths, predicted, measured)
    err = (predicted - measured) / measured
    assert report['mape_percent'] == pytest.approx(100 * np.mean(np.abs(err)))
    assert report['within_10_percent'] == pytest.approx(np.mean(np.abs(err) <= 0.1))
    assert report['kendall_tau'] == pytest.approx(kendalltau(predicted, measured)[0])
    worst = int(np.argmax(np.abs(err)))
    assert report['worst']['arch'] == paths[worst]
    assert report['worst']['error_percent'] == pytest.approx(100 * err[worst])
