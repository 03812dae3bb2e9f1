"""SupernetStep on fused storage: the same training as per-tensor SGD, untouched off-path units, one
device-to-host copy an iteration, AMP around the student/teacher forwards only, paths' latencies to the board."""
import contextlib
import copy

import numpy as np
import paddle
import pytest

from fake_gpu import built_as_on_gpu
from latency import synthetic_table
from pimm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from pimm.optim import create_optimizer
from pimm.utils.amp import GradScaler
from pimm.utils.host_copies import HostCopyCounter
from pimm.utils.model_ema import ModelEma
from Paddle_Cream.models.hypernet import HyperNet
from Paddle_Cream.search import MetaMatcher, PathLatency, PathSampler, PrioritizedBoard
from Paddle_Cream.search.flops_table import PathFlops
from Paddle_Cream.search.supernet_step import SearchSettings, SupernetStep

STA, CLASSES, RES, BATCH, SLICE = [1, 1, 2, 1, 1], 10, 32, 8, 2


def _batches(n, seed=0):
    rng = np.random.RandomState(seed)
    return [(paddle.to_tensor(rng.randn(BATCH, 3, RES, RES).astype('float32')),
             paddle.to_tensor(rng.randint(0, CLASSES, BATCH).astype('int64'))) for _ in range(n)]


def _search(net, fused: bool, pick='meta', scaler=None, ema=True, latency=None, latency_budget=None):
    flops = PathFlops(net, RES).flops
    optimizer = create_optimizer(net, opt='sgd', lr=0.05, weight_decay=1e-4, momentum=0.9,
                                 fused_units=net.units() if fused else None)
    average = ModelEma(net, decay=0.9, fused=getattr(optimizer, 'fused', None)) if ema else None
    settings = SearchSettings(method='cream', pick_method=pick, meta_sta_epoch=0, update_iter=3, slice_size=SLICE,
                              meta_lr=1e-2)
    paddle.seed(1)
    matcher = MetaMatcher(CLASSES, SLICE)
    budget = {} if latency is None else dict(latency_fn=latency.predict, latency_minimum=latency_budget[0],
                                             latency_maximum=latency_budget[1])
    sampler = PathSampler(STA, flops, 0, 1e4, how_to_prob='even', seed=1, **budget)
    board = PrioritizedBoard(3, cost='flops' if latency is None else 'latency')
    return SupernetStep(net, optimizer, sampler, settings, LabelSmoothingCrossEntropy(0.1), SoftTargetCrossEntropy(),
                        board, matcher, ema=average, scaler=scaler, latency_fn=budget.get('latency_fn'))


def _train(step, batches, epoch=1):
    results = [step(x, y, epoch=epoch, iteration=i, lr=0.05) for i, (x, y) in enumerate(batches)]
    results.append(step.finish())
    return [r for r in results if r is not None]


def _net():
    paddle.seed(0)
    net = HyperNet(STA, CLASSES, resolution=RES)
    net.train()
    return net


@pytest.mark.parametrize('pick', ['meta', 'top1'])
def test_fused_step_trains_like_per_tensor_sgd(pick):
    """The pipelined, fused step against the same algorithm stepping each tensor: identical weights, BN
    statistics, board and meta layer (bit for bit), and the lazy EMA equal to the every-step one."""
    a_net = _net()
    b_net = copy.deepcopy(a_net)
    a, b = _search(a_net, fused=True, pick=pick), _search(b_net, fused=False, pick=pick)
    batches = _batches(8)
    ra, rb = _train(a, batches), _train(b, batches)
    assert len(ra) == len(rb) == 8 and any(r.teacher is not None for r in ra)
    assert [(r.path, r.admitted, r.teacher) for r in ra] == [(r.path, r.admitted, r.teacher) for r in rb]
    assert [r.loss for r in ra] == [r.loss for r in rb] and [r.top1 for r in ra] == [r.top1 for r in rb]
    if pick == 'meta':
        assert sum(r.meta is not None for r in ra) >= 2
    for k, v in b_net.state_dict().items():
        np.testing.assert_array_equal(a_net.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    assert a.board.summary() == b.board.summary()
    np.testing.assert_array_equal(a.matcher.meta_layer.weight.numpy(), b.matcher.meta_layer.weight.numpy())
    got, expected = a.ema.state_dict(), b.ema.state_dict()
    for k in expected:
        np.testing.assert_allclose(got[k].numpy(), expected[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    a.optimizer.fused.check()


def test_units_no_path_took_are_not_touched():
    net = _net()
    step = _search(net, fused=True)
    fused = step.optimizer.fused
    before = [v.numpy().copy() for v in fused.values]
    ema_before = [v.numpy().copy() for v in step.ema._flat]
    results = _train(step, _batches(6))
    used = {u for r in results for p in (r.path, r.teacher) if p for u in net.path_units(p)}
    assert len(used) < len(fused)
    for u in set(range(len(fused))) - used:
        np.testing.assert_array_equal(fused.values[u].numpy(), before[u])
        np.testing.assert_array_equal(step.ema._flat[u].numpy(), ema_before[u])
        assert step.optimizer._velocity[u] is None or not step.optimizer._velocity[u].numpy().any()


@pytest.mark.parametrize('amp', [False, True], ids=['float32', 'amp'])
@pytest.mark.parametrize('pick', ['meta', 'top1'])
def test_one_device_to_host_copy_per_iteration(monkeypatch, pick, amp):
    """Metrics, board admission and (meta pick) the next teacher's scores: one copy per iteration, except
    on meta-update iterations (the meta gradient's figures, then a fresh pick with the new meta layer). With AMP
    too (issue 23, defect 2: the scaler's overflow check was a second copy per iteration)."""
    net = _net()
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024) if amp else None
    step = _search(net, fused=True, pick=pick, ema=True, scaler=scaler)
    batches = _batches(9)
    _train(step, batches[:3], epoch=0)   # board closed
    _train(step, batches[:3], epoch=1)   # board filling
    per_iteration = []
    with HostCopyCounter() as counter:
        for i, (x, y) in enumerate(batches[3:8], start=3):
            before = counter.count
            step(x, y, epoch=1, iteration=i, lr=0.05)
            per_iteration.append(counter.count - before)
    # the first call follows finish() (an epoch's end): nothing pending, a meta pick scores the board alone.
    # A meta-update iteration adds the meta gradient's figures and a pick with the updated meta layer.
    expected = [int(pick == 'meta')] + [3 if pick == 'meta' and (i + 1) % 3 == 0 else 1 for i in range(4, 8)]
    assert per_iteration == expected


def test_amp_wraps_the_forwards_and_not_the_board_or_meta_update(monkeypatch):
    """AMP True: paddle.amp O1 around the student and teacher forwards and the loss, a GradScaler around
    backward and step; board scoring and the meta update stay float32 (outside auto_cast). A CPU has no
    float16 kernels, so the scaler is built as on a GPU and auto_cast records instead of casting."""
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024)
    state = {'inside': False, 'levels': []}

    real_auto_cast = paddle.amp.auto_cast

    @contextlib.contextmanager
    def recording_auto_cast(enable=True, level='O1', **kwargs):
        state['levels'].append((enable, level))
        state['inside'] = enable
        try:
            with real_auto_cast(enable=enable, level=level, **kwargs):  # on a CPU it casts nothing
                yield
        finally:
            state['inside'] = False
    monkeypatch.setattr(paddle.amp, 'auto_cast', recording_auto_cast)
    net = _net()
    twin = copy.deepcopy(net)
    step, plain = _search(net, fused=True, scaler=scaler), _search(twin, fused=True)
    for name in ('score_slices', 'meta_step'):
        original = getattr(step.matcher, name)

        def outside(*args, _original=original, _name=name, **kwargs):
            assert not state['inside'], f'{_name} ran inside auto_cast'
            return _original(*args, **kwargs)
        monkeypatch.setattr(step.matcher, name, outside)
    batches = _batches(7)
    ra, rb = _train(step, batches), _train(plain, batches)
    enabled = [level for on, level in state['levels'] if on]  # the plain twin calls it with enable=False
    assert len(enabled) == len(ra) and set(enabled) == {'O1'}
    assert any(r.meta is not None for r in ra)
    # loss scaling by 1024 (a power of two) and unscaling are exact: the same training as without AMP
    assert [r.loss for r in ra] == [r.loss for r in rb]
    for k, v in twin.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    # an overflow is skipped (identically on every rank: the gradients are all-reduced first), the scale halved
    scaler._scale.set_value(paddle.to_tensor([3e38], dtype='float32'))
    fused = step.optimizer.fused
    trainable = [None if g is None else v.numpy()[:int(g.size)].copy() for v, g in zip(fused.values, fused.grads)]
    x, y = batches[0]
    step(x, y, epoch=1, iteration=100, lr=0.05)
    step.finish()
    assert float(scaler._scale.numpy()[0]) == pytest.approx(1.5e38, rel=1e-6) and scaler.overflows == 1
    for u, kept in enumerate(trainable):
        if kept is not None:  # weights unmoved (BN running statistics still follow the forward)
            np.testing.assert_array_equal(fused.values[u].numpy()[:kept.size], kept)


def test_paths_reach_the_board_with_their_predicted_latency():
    table = PathLatency(synthetic_table(STA, resolution=RES, num_classes=CLASSES))
    fastest, slowest = table.bounds()
    budget = (fastest + 0.3 * (slowest - fastest), fastest + 0.7 * (slowest - fastest))
    step = _search(_net(), fused=True, pick='top1', latency=table, latency_budget=budget)
    results = _train(step, _batches(6))
    assert [r.latency for r in results] == [table.predict(r.path) for r in results]
    assert all(budget[0] <= r.latency <= budget[1] for r in results)
    assert any(r.admitted for r in results) and step.board.cost == 'latency'
    assert [e['latency'] for e in step.board.summary()] == [table.predict(e.path) for e in step.board.entries]
    assert _train(_search(_net(), fused=True, pick='top1'), _batches(2))[0].latency is None   # no latency_fn


def test_one_overflow_does_not_poison_the_steps_after_it(monkeypatch):
    """Issue 23, defect 1: an overflowed step leaves its path's gradients non-finite in the fused buffers, and
    the GradScaler checks every parameter of the optimizer's groups. The steps after it must be applied and
    the loss scale must stay within a factor 2 (before the fix: 10 of 10 later steps skipped, 1024 -> 1)."""
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024)
    step = _search(_net(), fused=True, scaler=scaler, pick='top1', ema=False)
    batches = _batches(11, seed=3)
    x, y = batches[0]
    step(x * float('inf'), y, epoch=0, iteration=0, lr=0.05)   # a batch whose gradients are all non-finite
    step.finish()
    assert scaler.overflows == 1
    fused = step.optimizer.fused

    def weights():   # each unit's trainable part (its gradient's size); BN statistics follow every forward
        return [None if g is None else v.numpy()[:int(g.size)].copy() for v, g in zip(fused.values, fused.grads)]
    for i, (x, y) in enumerate(batches[1:], start=1):
        before = weights()
        step(x, y, epoch=0, iteration=i, lr=0.05)
        result = step.finish()
        moved = [u for u, (a, b) in enumerate(zip(before, weights())) if a is not None and not np.array_equal(a, b)]
        assert set(step.hypernet.path_units(result.path)) & set(moved), f'step {i} was not applied'
    assert scaler.overflows == 1 and float(scaler._scale.numpy()[0]) >= 512


def test_an_overflowed_iteration_offers_nothing_to_the_board():
    """Under AMP a non-finite loss is an overflow the scaler skips; its soft labels may be NaN, so the board does
    not take it (it would teach later paths NaN)."""
    import math
    scaler = built_as_on_gpu(GradScaler, init_loss_scaling=1024)
    step = _search(_net(), fused=True, scaler=scaler, pick='top1', ema=False)
    batches = _batches(3, seed=5)
    _train(step, batches[:1], epoch=1)
    size = len(step.board)
    assert 0 < size < 3   # room left: any finite iteration would be taken
    x, y = batches[1]
    step(x * float('inf'), y, epoch=1, iteration=1, lr=0.05)
    result = step.finish()
    assert not math.isfinite(result.loss) and not result.admitted and len(step.board) == size
    assert all(np.isfinite(e.soft_labels.numpy()).all() for e in step.board.entries)
    assert scaler.overflows == 1


# hand-computed expectations: one Cream step on fixed paths, against numpy on logits of separate forwards
STUDENT_PATH = [[0], [0], [1], [2, 4], [3], [5], [0]]
TEACHER_PATH = [[0], [5], [4], [3, 1], [2], [0], [0]]
SMOOTHING = 0.1


class _FixedPath:
    """Sampler stub: always the same path."""

    def __init__(self, path):
        self.path = path

    def sample(self, board=None):
        return [list(stage) for stage in self.path], 7.


class _FixedTeacher:
    """Matcher stub: the board's best entry as the teacher, with a chosen matching weight m."""

    def __init__(self, m):
        self.m = m

    def select_teacher(self, model, path, board, *args, **kwargs):
        return board.best(), self.m


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _softmax(z):
    return np.exp(_log_softmax(z))


def _one_step(matcher, with_teacher):
    """One iteration of a board-open epoch on STUDENT_PATH; the board holds TEACHER_PATH (or nothing). Returns
    the settled result, the board, the batch and both paths' logits from forwards before the step (float64)."""
    net = _net()
    board = PrioritizedBoard(3)
    if with_teacher:
        board.admit(90., 1., TEACHER_PATH, np.zeros((SLICE, 3, RES, RES), 'float32'),
                    np.full((SLICE, CLASSES), 1. / CLASSES, 'float32'))
    x, y = _batches(1, seed=2)[0]
    with paddle.no_grad():   # train mode as in the step: batch statistics, no dropout (rate 0)
        student, teacher = (net(x, p).numpy().astype(np.float64) for p in (STUDENT_PATH, TEACHER_PATH))
    settings = SearchSettings(method='cream', pick_method='top1', meta_sta_epoch=0, slice_size=SLICE)
    step = SupernetStep(net, create_optimizer(net, opt='sgd', lr=0.05, momentum=0.9), _FixedPath(STUDENT_PATH),
                        settings, LabelSmoothingCrossEntropy(SMOOTHING), SoftTargetCrossEntropy(), board, matcher)
    assert step(x, y, epoch=1, iteration=0, lr=0.05) is None
    return step.finish(), board, x.numpy(), y.numpy(), student, teacher


def _smoothed_ce(logits, y):
    log_p = _log_softmax(logits)
    nll = -log_p[np.arange(len(y)), y]
    return float(((1. - SMOOTHING) * nll - SMOOTHING * log_p.mean(axis=1)).mean())


@pytest.mark.parametrize('make_matcher, m', [pytest.param(lambda: _FixedTeacher(0.3), 0.3, id='stub-m0.3'),
                                             pytest.param(lambda: MetaMatcher(CLASSES, SLICE), 0.5, id='top1-m0.5')])
def test_a_taught_step_loss_is_the_papers_weighting_of_kd_and_ce(make_matcher, m):
    """docs/reference.md §5 step 3: loss = (m * KD + (2 - m) * CE) / 2, KD the cross-entropy of the student's logits
    against softmax(teacher logits), CE label-smoothed (0.1); computed in numpy from separate forwards of both paths,
    with m chosen by a stub (0.3) or top1's 0.5. Relative tolerance 1e-5: float32 forward and reductions
    against float64 numpy (about 1e-7); a wrong weight moves the loss by several percent here."""
    result, _, _, y, student, teacher = _one_step(make_matcher(), with_teacher=True)
    kd = float(-(_softmax(teacher) * _log_softmax(student)).sum(axis=1).mean())
    ce = _smoothed_ce(student, y)
    assert abs(kd - ce) > 0.05 * ce   # the two terms differ: swapped or re-weighted terms would show
    assert result.teacher == TEACHER_PATH and result.m == m
    assert result.loss == pytest.approx((m * kd + (2. - m) * ce) / 2., rel=1e-5)


def test_an_untaught_step_loss_is_the_smoothed_ce():
    """Board open but empty: no teacher, loss = label-smoothed CE of the student (numpy, relative 1e-5 as above)."""
    result, _, _, y, student, _ = _one_step(_FixedTeacher(0.3), with_teacher=False)
    assert result.teacher is None and result.m is None
    assert result.loss == pytest.approx(_smoothed_ce(student, y), rel=1e-5)


@pytest.mark.parametrize('with_teacher', [True, False], ids=['teacher', 'empty-board'])
def test_an_admitted_entry_stores_the_teachers_softmax_or_the_students_own(with_teacher):
    """docs/reference.md §5 step 5: the admitted entry holds the batch's first SLICE inputs (exactly) and softmax of the
    teacher's logits on them, or of the student's own when the board had no teacher; against numpy softmax of
    separate forwards. Absolute tolerance 1e-6 on probabilities (float32 softmax rounding is about 1e-7); the
    two paths' softmaxes differ by more than 1e-2, so storing the wrong one fails."""
    result, board, x, _, student, teacher = _one_step(_FixedTeacher(0.3), with_teacher=with_teacher)
    assert result.admitted
    entry, = [e for e in board.entries if e.path == STUDENT_PATH]
    expected, other = (_softmax(teacher), _softmax(student)) if with_teacher else (_softmax(student), _softmax(teacher))
    assert np.abs(expected[:SLICE] - other[:SLICE]).max() > 1e-2
    np.testing.assert_array_equal(entry.inputs.numpy(), x[:SLICE])
    np.testing.assert_allclose(entry.soft_labels.numpy(), expected[:SLICE], rtol=0, atol=1e-6)
