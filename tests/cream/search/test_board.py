"""PrioritizedBoard: admission rules (by FLOPs or latency), ordering, eviction, state round trip, choice
frequencies."""
import json

import numpy as np
import paddle
import pytest

from Paddle_Cream.search.board import BoardEntry, PrioritizedBoard

PATH = [[0], [1], [2, 3], [3], [4], [5], [0]]


def _arrays(seed=0, slice_size=2, classes=4):
    rng = np.random.RandomState(seed)
    return rng.randn(slice_size, 3, 8, 8).astype('float32'), rng.rand(slice_size, classes).astype('float32')


def _admit(board, top1, flops=100., path=PATH, seed=0):
    return board.admit(top1, flops, path, *_arrays(seed))


def _full_board(top1s=(70., 60., 50.), flops=100.):
    board = PrioritizedBoard(pool_size=len(top1s))
    for t in top1s:
        assert _admit(board, t, flops)
    return board


def test_admits_anything_while_not_full_and_sorts_best_first():
    board = PrioritizedBoard(pool_size=4)
    assert board.is_empty and len(board) == 0
    for t in (10., 30., 20.):
        assert _admit(board, t, flops=1e9)
    assert [e.top1 for e in board.entries] == [30., 20., 10.]
    assert board.best().top1 == 30. and board.worst().top1 == 10. and not board.is_empty


def test_full_board_evicts_the_worst():
    board = _full_board()
    assert _admit(board, 80.)
    assert [e.top1 for e in board.entries] == [80., 70., 60.] and len(board) == 3


def test_gap_rule_needs_strictly_more_than_acc_gap():
    board = _full_board()
    assert not _admit(board, 55., flops=100.)  # exactly 5 points better, same FLOPs
    assert not _admit(board, 54., flops=200.)
    assert _admit(board, 55.5, flops=200.)
    assert [e.top1 for e in board.entries] == [70., 60., 55.5]


def test_flops_tie_rule():
    board = _full_board()
    assert not _admit(board, 52., flops=100.)  # better but equal FLOPs, within the gap
    assert not _admit(board, 52., flops=150.)  # better but more FLOPs
    assert not _admit(board, 50., flops=10.)  # equal top-1, fewer FLOPs
    assert _admit(board, 50.5, flops=99.)  # strictly better with strictly fewer FLOPs
    assert board.worst().top1 == 50.5 and board.worst().flops == 99.


def test_ties_keep_arrival_order():
    board = PrioritizedBoard(pool_size=3)
    for seed, t in enumerate((40., 50., 40.)):
        _admit(board, t, seed=seed)
    entries = board.entries
    assert [e.top1 for e in entries] == [50., 40., 40.]
    np.testing.assert_array_equal(entries[1].inputs.numpy(), _arrays(0)[0])
    np.testing.assert_array_equal(entries[2].inputs.numpy(), _arrays(2)[0])


def test_pool_size_one():
    board = PrioritizedBoard(pool_size=1)
    assert _admit(board, 10.)
    assert not _admit(board, 12.)
    assert _admit(board, 11., flops=50.)
    assert _admit(board, 16.5)
    assert len(board) == 1 and board.best() is board.worst() and board.best().top1 == 16.5


def test_admit_copies_arrays_and_checks_shapes():
    board = PrioritizedBoard(pool_size=2)
    inputs, labels = _arrays()
    board.admit(10., 1., PATH, inputs, labels)
    inputs[:] = 0
    assert isinstance(board.best().inputs, paddle.Tensor)  # the slices live on the device
    assert np.abs(board.best().inputs.numpy()).sum() > 0
    on_device = paddle.ones([2, 3, 4, 4])
    board.admit(20., 1., PATH, on_device, paddle.ones([2, 5]))
    on_device.zero_()
    assert float(board.best().inputs.sum()) == 2 * 3 * 4 * 4  # a copy, not the batch itself
    with pytest.raises(ValueError, match='SLICE'):
        board.admit(10., 1., PATH, inputs[0], labels)
    with pytest.raises(ValueError, match='pool_size'):
        PrioritizedBoard(pool_size=0)
    with pytest.raises(IndexError):
        PrioritizedBoard(pool_size=1).best()


def test_state_round_trip_is_exact():
    board = _full_board()
    _admit(board, 90., flops=12.5, path=[[0], [5], [4, 4], [3], [2], [1], [0]], seed=7)
    state = board.state_dict()
    restored = PrioritizedBoard(pool_size=1, acc_gap=0.)
    restored.load_state_dict(state)
    assert restored.pool_size == 3 and restored.acc_gap == 5.
    for a, b in zip(board.entries, restored.entries):
        assert (a.top1, a.flops, a.path) == (b.top1, b.flops, b.path)
        np.testing.assert_array_equal(a.inputs.numpy(), b.inputs.numpy())
        np.testing.assert_array_equal(a.soft_labels.numpy(), b.soft_labels.numpy())
        assert b.inputs.dtype == paddle.float32
        assert isinstance(state['entries'][0]['inputs'], np.ndarray)  # checkpoints hold arrays
    assert restored.summary() == board.summary()


def test_summary_is_json_and_ranked():
    board = _full_board()
    summary = json.loads(json.dumps(board.summary()))
    assert [s['rank'] for s in summary] == [1, 2, 3]
    assert summary[0] == {'rank': 1, 'top1': 70., 'flops': 100., 'latency': None, 'arch': PATH}


def test_choice_frequencies():
    board = PrioritizedBoard(pool_size=3)
    np.testing.assert_allclose(board.choice_frequencies(), np.full(6, 1 / 6))
    _admit(board, 1., path=[[0], [1], [1, 1], [3], [3], [3], [0]])
    _admit(board, 2., path=[[0], [5], [1, 3], [3], [0], [3], [0]])
    # searched layers only: 1 x4, 3 x6, 5 x1, 0 x1 (stages 0 and 6 are not counted)
    np.testing.assert_allclose(board.choice_frequencies(), np.array([1, 4, 0, 6, 0, 1]) / 12)
    assert isinstance(board.entries[0], BoardEntry)


def _latency_board(cost, top1s=(70., 60., 50.)):
    board = PrioritizedBoard(pool_size=len(top1s), cost=cost)
    for t in top1s:
        assert board.admit(t, 100., PATH, *_arrays(), latency=5.)
    return board


def test_latency_tie_rule_compares_latency_not_flops():
    """Better top-1 within the gap, lower latency but more FLOPs: cheaper by latency only."""
    assert not _latency_board('flops').would_admit(50.5, 200., latency=4.)
    board = _latency_board('latency')
    assert not board.admit(50.5, 50., PATH, *_arrays(), latency=5.)   # fewer FLOPs, same latency
    assert not board.admit(50.5, 50., PATH, *_arrays(), latency=6.)
    assert board.admit(50.5, 200., PATH, *_arrays(), latency=4.)
    assert (board.worst().top1, board.worst().flops, board.worst().latency) == (50.5, 200., 4.)
    assert board.summary()[-1]['latency'] == 4.
    assert board.admit(55.6, 900., PATH, *_arrays(), latency=9.)      # the gap rule ignores the cost


def test_a_latency_board_needs_latencies_and_a_known_cost():
    with pytest.raises(ValueError, match="cost 'latency'"):
        PrioritizedBoard(pool_size=2, cost='latency').admit(50., 100., PATH, *_arrays())
    with pytest.raises(ValueError, match='cost'):
        PrioritizedBoard(pool_size=2, cost='params')


def test_latency_state_round_trip_and_old_states_load():
    board = _latency_board('latency')
    restored = PrioritizedBoard(pool_size=1)
    restored.load_state_dict(board.state_dict())
    assert restored.cost == 'latency' and restored.summary() == board.summary()
    old = _full_board().state_dict()   # as saved before latency budgets: no cost, no latency per entry
    del old['cost']
    for entry in old['entries']:
        del entry['latency']
    restored = PrioritizedBoard(pool_size=1)
    restored.load_state_dict(old)
    assert restored.cost == 'flops' and [e.latency for e in restored.entries] == [None] * 3
    with pytest.raises(ValueError, match='without a latency'):
        PrioritizedBoard(pool_size=1, cost='latency').load_state_dict(old)
