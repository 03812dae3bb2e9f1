"""MetaMatcher: teacher selection and the finite-difference meta gradient against the exact objective."""
import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from Paddle_Cream.models.hypernet import HyperNet
from Paddle_Cream.search.board import BoardEntry, PrioritizedBoard
from Paddle_Cream.search.meta_matching import MetaMatcher, batch_norm_layers, per_slice_batch_stats

NUM_CLASSES, SLICE, RES = 3, 2, 32
PATH = [[0], [1], [2], [3], [4], [5], [0]]


@pytest.fixture
def float64():
    old = paddle.get_default_dtype()
    paddle.set_default_dtype('float64')
    yield
    paddle.set_default_dtype(old)


def _net_and_matcher(seed=0, meta_weight_scale=2.0):
    paddle.seed(seed)
    net = HyperNet([1, 1, 1, 1, 1], num_classes=NUM_CLASSES, resolution=RES)
    matcher = MetaMatcher(NUM_CLASSES, SLICE)
    rng = np.random.RandomState(seed)
    w = matcher.meta_layer.weight
    w.set_value(paddle.to_tensor(rng.randn(*w.shape) * meta_weight_scale, dtype=w.dtype))
    return net, matcher


def _batch(seed=1):
    """(the chosen board entry, the teacher's probabilities on x_train, x_train, x_val, y_val)."""
    rng = np.random.RandomState(seed)
    dtype = paddle.get_default_dtype()
    entry = BoardEntry(50., 10., [[0], [3], [3], [3], [3], [3], [0]], rng.randn(SLICE, 3, RES, RES).astype(dtype),
                       rng.dirichlet(np.ones(NUM_CLASSES), size=SLICE).astype(dtype))
    teacher = rng.dirichlet(np.ones(NUM_CLASSES), size=SLICE)
    x_train = paddle.to_tensor(rng.randn(SLICE, 3, RES, RES), dtype=dtype)
    x_val = paddle.to_tensor(rng.randn(SLICE, 3, RES, RES), dtype=dtype)
    y_val = paddle.to_tensor(rng.randint(NUM_CLASSES, size=SLICE), dtype='int64')
    return entry, paddle.to_tensor(teacher, dtype=dtype), x_train, x_val, y_val


def _objective(net, matcher, entry, teacher, x_train, x_val, y_val, lr, clip):
    """J(phi) = CE_val(theta - lr * clip(grad_theta [m * KD])), m the entry's matching score on its
    stored slice (docs/reference.md §5.3/5.6), written independently of the module."""
    params = net.path_parameters(PATH)
    theta = [p.detach().clone() for p in params]
    logits = net(x_train, PATH)
    entry_probs = F.softmax(net(paddle.to_tensor(entry.inputs), PATH), axis=-1)
    diff = (entry_probs - paddle.to_tensor(entry.soft_labels)).reshape([1, -1])
    m = F.sigmoid(-matcher.meta_layer(diff)).sum()
    kd = (-teacher * F.log_softmax(logits, axis=-1)).sum(-1).mean()
    grads = paddle.grad(m * kd, params)
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    scale = min(1., clip / norm)
    with paddle.no_grad():
        for p, t, g in zip(params, theta, grads):
            p.set_value(t - lr * scale * g)
        val = float(F.cross_entropy(net(x_val, PATH), y_val))
        for p, t in zip(params, theta):
            p.set_value(t)
    return val


def _finite_difference(net, matcher, batch, lr, clip, delta=1e-5):
    out = []
    for p in matcher.meta_layer.parameters():
        flat = p.numpy().ravel().copy()
        grad = np.zeros_like(flat)
        for i in range(flat.size):
            values = []
            for sign in (1, -1):
                pert = flat.copy()
                pert[i] += sign * delta
                p.set_value(paddle.to_tensor(pert.reshape(p.shape), dtype=p.dtype))
                values.append(_objective(net, matcher, *batch, lr, clip))
            grad[i] = (values[0] - values[1]) / (2 * delta)
        p.set_value(paddle.to_tensor(flat.reshape(p.shape), dtype=p.dtype))
        out.append(grad)
    return np.concatenate(out)


@pytest.mark.parametrize('clip, clipped', [(1e3, False), (1e-3, True)])
def test_meta_gradient_matches_finite_difference_of_objective(float64, clip, clipped):
    net, matcher = _net_and_matcher()
    net.eval()
    batch = _batch()
    lr = 0.5
    grad_phi, info = matcher.meta_gradient(net, PATH, *batch, student_lr=lr, grad_clip=clip)
    assert (info['student_grad_norm'] > clip) == clipped
    analytic = np.concatenate([g.numpy().ravel() for g in grad_phi])
    numeric = _finite_difference(net, matcher, batch, lr, clip)
    rel = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    print(f'clip={clip}: |grad|={np.linalg.norm(numeric):.3e} relative error {rel:.2e}')
    assert np.linalg.norm(numeric) > 0
    assert rel < 1e-2
    # the only approximation is the O(eps^2) central difference: a smaller eps converges to J's gradient
    fine, _ = matcher.meta_gradient(net, PATH, *batch, student_lr=lr, grad_clip=clip, eps_scale=1e-4)
    fine = np.concatenate([g.numpy().ravel() for g in fine])
    assert np.linalg.norm(fine - numeric) / np.linalg.norm(numeric) < 1e-5


def test_meta_step_leaves_weights_bn_stats_and_grads_untouched():
    net, matcher = _net_and_matcher()
    net.train()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    phi_before = matcher.meta_layer.weight.numpy().copy()
    info = matcher.meta_step(net, PATH, *_batch(), student_lr=0.1, meta_lr=0.1)
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k].numpy()) for k in before)
    assert all(p.grad is None for p in net.parameters())
    assert not np.array_equal(phi_before, matcher.meta_layer.weight.numpy())
    assert set(info) == {'meta_grad_norm', 'val_loss', 'm'} and 0 < info['m'] < 1


def test_meta_step_clips_and_matches_an_sgd_optimizer(float64):
    batch, clip, lr, meta_lr = _batch(), 1e-2, 5.0, 0.3
    net, plain = _net_and_matcher()
    net.eval()
    _, with_opt = _net_and_matcher()
    opt = paddle.optimizer.SGD(learning_rate=meta_lr, parameters=with_opt.meta_layer.parameters())
    a = plain.meta_step(net, PATH, *batch, student_lr=lr, meta_lr=meta_lr, grad_clip=clip)
    b = with_opt.meta_step(net, PATH, *batch, student_lr=lr, meta_lr=meta_lr, grad_clip=clip, optimizer=opt)
    assert a['meta_grad_norm'] == pytest.approx(b['meta_grad_norm']) and a['meta_grad_norm'] > clip
    for p, q in zip(plain.meta_layer.parameters(), with_opt.meta_layer.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-12, atol=1e-14)
    _, fresh = _net_and_matcher()
    step = np.concatenate([(p.numpy() - q.numpy()).ravel()
                           for p, q in zip(plain.meta_layer.parameters(), fresh.meta_layer.parameters())])
    assert np.linalg.norm(step) == pytest.approx(meta_lr * clip, rel=1e-9)  # clipped to norm grad_clip


def _board(soft_label_sums=(1., 0.2, 3.), top1s=(50., 40., 30.), seed=2):
    rng = np.random.RandomState(seed)
    board = PrioritizedBoard(pool_size=5)
    for top1, total in zip(top1s, soft_label_sums):
        labels = rng.dirichlet(np.ones(NUM_CLASSES), size=SLICE) * total / SLICE
        board.admit(top1, 10., PATH, rng.randn(SLICE, 3, RES, RES).astype('float32'), labels)
    return board


@pytest.mark.parametrize('train', [False, True])
def test_batched_scores_equal_per_entry_scores(float64, train):
    """One batched forward scores each entry as its own forward would (docs/reference.md §5.4): in train mode
    BatchNorm normalises every stored slice with that slice's statistics, not the whole board's.
    float64: with 2-image slices, float32 BN statistics differ in the 3rd digit between kernels."""
    net, matcher = _net_and_matcher()
    net.train() if train else net.eval()
    board = _board()
    with paddle.no_grad():
        batched = matcher.scores(net, PATH, board).numpy()
        single = [matcher.meta_layer((F.softmax(net(paddle.to_tensor(e.inputs, 'float64'), PATH), -1)
                                      - paddle.to_tensor(e.soft_labels, 'float64')).reshape([1, -1])).item()
                  for e in board.entries]
        stacked = paddle.to_tensor(np.concatenate([e.inputs for e in board.entries]), 'float64')
        whole_board = F.softmax(net(stacked, PATH), -1)
    np.testing.assert_allclose(batched, single, rtol=1e-6, atol=1e-8)
    labels = paddle.to_tensor(np.concatenate([e.soft_labels for e in board.entries]), 'float64')
    mixed = matcher.meta_layer((whole_board - labels).reshape([len(board), -1])).numpy().ravel()
    assert np.allclose(mixed, single, rtol=1e-6, atol=1e-6) == (not train)  # plain BN would mix the slices


def test_per_slice_batch_stats_is_batch_norm_per_slice():
    paddle.seed(0)
    bn = paddle.nn.BatchNorm2D(5)
    bn.weight.set_value(paddle.rand([5]) + 0.5)
    bn.bias.set_value(paddle.rand([5]))
    x = paddle.randn([6, 5, 3, 4]) * 3 + 1
    with per_slice_batch_stats(bn, 2):
        grouped = bn(x).numpy()
    running = bn._mean.numpy().copy()
    alone = np.concatenate([bn(x[i:i + 2]).numpy() for i in range(0, 6, 2)])
    np.testing.assert_allclose(grouped, alone, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(running, np.zeros(5, 'float32'))  # inside: running stats untouched
    assert 'forward' not in vars(bn)
    with pytest.raises(ValueError, match='slices of 4'):
        with per_slice_batch_stats(bn, 4):
            bn(x)


def test_select_teacher_top1_and_meta():
    net, matcher = _net_and_matcher()
    net.eval()
    board = _board()
    entry, m = matcher.select_teacher(net, PATH, board, method='top1')
    assert entry is board.best() and m == 0.5
    # w = 1: score = SLICE - sum(soft labels) + b, highest for the middle entry (sum 0.2)
    matcher.meta_layer.weight.set_value(paddle.ones_like(matcher.meta_layer.weight))
    matcher.meta_layer.bias.set_value(paddle.full_like(matcher.meta_layer.bias, 0.5))
    entry, m = matcher.select_teacher(net, PATH, board, method='meta')
    assert entry is board.entries[1]
    assert m == pytest.approx(1 / (1 + math.exp(SLICE - 0.2 + 0.5)), rel=1e-5)
    scores = matcher.scores(net, PATH, _board(seed=3)).numpy()
    entry, m = matcher.select_teacher(net, PATH, _board(seed=3), method='meta')
    assert m == pytest.approx(1 / (1 + math.exp(scores.max())), rel=1e-5)
    with pytest.raises(ValueError, match='method'):
        matcher.select_teacher(net, PATH, board, method='best')
    with pytest.raises(ValueError, match='empty'):
        matcher.select_teacher(net, PATH, PrioritizedBoard(3))


def test_scores_keep_bn_running_stats():
    net, matcher = _net_and_matcher()
    net.train()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items() if '_mean' in k or '_variance' in k}
    with paddle.no_grad():
        matcher.scores(net, PATH, _board())
    assert all(np.array_equal(v, net.state_dict()[k].numpy()) for k, v in before.items())


def test_matching_weight_shape_check():
    _, matcher = _net_and_matcher()
    with pytest.raises(ValueError, match=r'\[2, 3\]'):
        matcher.matching_weight(paddle.zeros([3, 3]), paddle.zeros([3, 3]))
    m = matcher.matching_weight(paddle.zeros([SLICE, NUM_CLASSES]), paddle.full([SLICE, NUM_CLASSES], 1 / 3))
    assert m.shape == [] and float(m) == pytest.approx(1 / (1 + math.exp(matcher.meta_layer.bias.item())))


def test_sync_batchnorm_hypernetwork_scores_like_plain_and_per_entry(float64):
    """BATCHNORM.SYNC_BN converts every BatchNorm2D into paddle.nn.SyncBatchNorm. Scoring must still use
    each slice's own statistics, locally (no collective, no running-statistics update): the converted
    network scores exactly like the plain one and like one forward per entry."""
    import copy
    net, matcher = _net_and_matcher()
    synced = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(net))
    assert any(isinstance(m, paddle.nn.SyncBatchNorm) for m in synced.sublayers())
    net.train(), synced.train()
    board = _board()
    before = {k: v.numpy().copy() for k, v in synced.state_dict().items()}
    plain, converted = matcher.scores(net, PATH, board).numpy(), matcher.scores(synced, PATH, board).numpy()
    with paddle.no_grad():  # one forward per entry, plain BatchNorm2D in train mode
        single = [matcher.meta_layer((F.softmax(net(paddle.to_tensor(e.inputs, 'float64'), PATH), -1)
                                      - paddle.to_tensor(e.soft_labels, 'float64')).reshape([1, -1])).item()
                  for e in board.entries]
    np.testing.assert_array_equal(converted, plain)
    np.testing.assert_allclose(converted, single, rtol=1e-6, atol=1e-8)
    assert all(np.array_equal(before[k], v.numpy()) for k, v in synced.state_dict().items())


def test_meta_step_on_a_sync_batchnorm_network_is_local():
    """The meta update's forwards also use local per-slice statistics: with SyncBatchNorm (no CPU kernel:
    any collective batch norm here would fail) it runs and equals the plain network's update."""
    import copy
    net, plain = _net_and_matcher()
    synced = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(net))
    _, other = _net_and_matcher()
    net.train(), synced.train()
    a = plain.meta_step(net, PATH, *_batch(), student_lr=0.1, meta_lr=0.1)
    b = other.meta_step(synced, PATH, *_batch(), student_lr=0.1, meta_lr=0.1)
    assert a == pytest.approx(b, rel=1e-5)
    np.testing.assert_allclose(plain.meta_layer.weight.numpy(), other.meta_layer.weight.numpy(), rtol=1e-5, atol=1e-7)


def _objective_from(state, *args):
    paddle.set_rng_state(state)  # every evaluation of J draws the same dropout / drop-path masks
    return _objective(*args)


@pytest.mark.parametrize('clip', [1e3, 1e-3])
def test_meta_gradient_with_dropout_matches_the_central_difference(float64, clip):
    """Dropout and drop-path on: J(phi) is defined with one set of masks; the + and - sides of the finite
    difference must reuse the masks of L_train's forward, or they difference two different functions
    (without the replay: relative errors 0.03 unclipped, 0.69 clipped). BatchNorm in eval mode: with
    2-image batch statistics this toy network's student gradient norm is ~3e5, too ill-conditioned for
    any finite difference at eps 1e-3."""
    paddle.seed(3)
    net = HyperNet([1, 1, 1, 1, 1], num_classes=NUM_CLASSES, resolution=RES, drop_rate=0.3, drop_path_rate=0.3)
    _, matcher = _net_and_matcher()
    net.train()
    for layer in batch_norm_layers(net):
        layer.eval()
    batch, lr = _batch(), 0.5
    state = paddle.get_rng_state()
    grad_phi, info = matcher.meta_gradient(net, PATH, *batch, student_lr=lr, grad_clip=clip)
    assert (float(info['student_grad_norm']) > clip) == (clip < 1)
    analytic = np.concatenate([g.numpy().ravel() for g in grad_phi])
    numeric = []
    for p in matcher.meta_layer.parameters():
        flat = p.numpy().ravel().copy()
        for i in range(flat.size):
            values = []
            for sign in (1, -1):
                pert = flat.copy()
                pert[i] += sign * 1e-6
                p.set_value(paddle.to_tensor(pert.reshape(p.shape), dtype=p.dtype))
                values.append(_objective_from(state, net, matcher, *batch, lr, clip))
            numeric.append((values[0] - values[1]) / 2e-6)
        p.set_value(paddle.to_tensor(flat.reshape(p.shape), dtype=p.dtype))
    numeric = np.array(numeric)
    rel = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    assert np.linalg.norm(numeric) > 0 and rel < 1e-3, rel


def test_finite_difference_runs_without_tf32_and_restores_it(monkeypatch):
    """cuDNN convolutions default to TF32 on Ampere+: a 10-bit mantissa rounds most of a ~1e-7 relative
    perturbation away. Both switches are off inside (every forward of the meta gradient), restored after."""
    from pimm.utils import precision
    core = paddle.base.core
    saved = core.get_cudnn_switch(), core.get_cublas_switch()
    net, matcher = _net_and_matcher()
    seen = []
    original = matcher._phi_grad
    monkeypatch.setattr(matcher, '_phi_grad', lambda *a: seen.append(precision.tf32_enabled()) or original(*a))
    try:
        core.set_cudnn_switch(True)
        core.set_cublas_switch(True)
        matcher.meta_gradient(net, PATH, *_batch(), student_lr=0.1)
        assert seen == [False, False]
        assert core.get_cudnn_switch() and core.get_cublas_switch()
    finally:
        core.set_cudnn_switch(saved[0])
        core.set_cublas_switch(saved[1])


def test_finite_difference_step_survives_float32_rounding():
    from Paddle_Cream.search.meta_matching import finite_difference_step
    small = finite_difference_step(paddle.to_tensor(1.), paddle.to_tensor(2.), 1e-3)
    assert float(small) == pytest.approx(1e-3 / 2)   # the O(eps^2)-accurate step of small paths
    # a path of 4.8M weights of rms 0.03 (|theta| ~ 66): each weight moves by hundreds of float32 ulps
    theta_norm, u_norm, n = 66., 1., 4.8e6
    eps = float(finite_difference_step(paddle.to_tensor(theta_norm), paddle.to_tensor(u_norm), 1e-3))
    per_weight = eps * u_norm / np.sqrt(n)
    ulp = np.spacing(np.float32(theta_norm / np.sqrt(n)))
    assert per_weight / ulp > 100
