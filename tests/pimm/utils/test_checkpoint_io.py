"""pimm.utils.checkpoint_io (safe load, atomic save) and pimm.models load_checkpoint / resume_checkpoint."""
import argparse
import collections
import os
import pickle
import random
import subprocess

import numpy as np
import paddle
import pytest
import timm.models._helpers as timm_helpers
import torch

from pimm.models import InvertedResidual, load_checkpoint, load_state_dict, resume_checkpoint
from pimm.utils import CheckpointFileError, UnknownObject, load_paddle_file, save_paddle_file

pytestmark = pytest.mark.usefixtures('seeded')


# --------------------------------------------------------------------------------------------- round trip

def _nested():
    paddle.seed(0)
    return {
        'state_dict': collections.OrderedDict([
            ('conv.weight', paddle.randn([4, 3, 3, 3])),
            ('bn._mean', paddle.rand([4])),
            ('steps', paddle.to_tensor([1, 2, 3], dtype='int64')),
            ('mask', paddle.to_tensor([True, False])),
            ('half', paddle.ones([2], dtype='float16')),
        ]),
        'nested': {'deeper': {'t': paddle.arange(6, dtype='float32').reshape([2, 3]), 'n': 7}},
        'epoch': 12, 'lr': 0.0125, 'arch': 'cream_14', 'flags': [True, None, 1.5, 'x'],
        'np': np.arange(5, dtype=np.int32),
    }


def _assert_same(loaded, original):
    if isinstance(original, paddle.Tensor):
        assert isinstance(loaded, np.ndarray)
        assert loaded.dtype == original.numpy().dtype
        np.testing.assert_array_equal(loaded, original.numpy())
    elif isinstance(original, np.ndarray):
        assert isinstance(loaded, np.ndarray) and loaded.dtype == original.dtype
        np.testing.assert_array_equal(loaded, original)
    elif isinstance(original, dict):
        assert type(loaded) is type(original)
        assert list(loaded) == list(original)
        for k in original:
            _assert_same(loaded[k], original[k])
    elif isinstance(original, list):
        assert isinstance(loaded, list) and len(loaded) == len(original)
        for a, b in zip(loaded, original):
            _assert_same(a, b)
    else:
        assert loaded == original and type(loaded) is type(original)


def test_round_trip_nested_checkpoint(tmp_path):
    obj = _nested()
    path = tmp_path / 'ckpt.pdparams'
    save_paddle_file(obj, path)
    loaded = load_paddle_file(path)
    _assert_same(loaded, obj)
    assert type(loaded['state_dict']) is collections.OrderedDict


def test_round_trip_str_path_and_model_state_dict(tmp_path):
    model = InvertedResidual(8, 8, exp_ratio=2)
    path = str(tmp_path / 'model.pdparams')
    save_paddle_file(model.state_dict(), path)
    loaded = load_paddle_file(path)
    assert list(loaded) == list(model.state_dict())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded[k], v.numpy())


def test_reads_files_written_by_paddle_save(tmp_path):
    obj = _nested()
    path = str(tmp_path / 'plain.pdparams')
    paddle.save(obj, path)
    _assert_same(load_paddle_file(path), obj)


def test_paddle_load_reads_our_files(tmp_path):
    obj = {'w': paddle.randn([3, 2]), 'epoch': 3}
    path = str(tmp_path / 'ours.pdparams')
    save_paddle_file(obj, path)
    back = paddle.load(path)
    assert back['epoch'] == 3
    np.testing.assert_array_equal(np.asarray(back['w']), obj['w'].numpy())


# --------------------------------------------------------------------------------------------- atomic write

def test_save_leaves_only_the_destination(tmp_path):
    save_paddle_file({'a': paddle.ones([2])}, tmp_path / 'sub' / 'dir' / 'x.pdparams')  # parents created
    assert os.listdir(tmp_path / 'sub' / 'dir') == ['x.pdparams']
    save_paddle_file({'a': paddle.zeros([2])}, tmp_path / 'sub' / 'dir' / 'x.pdparams')  # overwrite
    assert os.listdir(tmp_path / 'sub' / 'dir') == ['x.pdparams']
    np.testing.assert_array_equal(load_paddle_file(tmp_path / 'sub' / 'dir' / 'x.pdparams')['a'], [0., 0.])


@pytest.mark.parametrize('unpicklable', [lambda: 1, (lambda x: x,), {'ok': paddle.ones([1]), 'bad': lambda: 0}],
                         ids=['lambda', 'in_tuple', 'in_dict'])
def test_failed_save_creates_nothing(tmp_path, unpicklable):
    dest = tmp_path / 'never.pdparams'
    with pytest.raises(Exception):
        save_paddle_file(unpicklable, dest)
    assert not dest.exists()
    assert os.listdir(tmp_path) == []


def test_failed_save_leaves_existing_file_untouched(tmp_path):
    dest = tmp_path / 'keep.pdparams'
    save_paddle_file({'epoch': 1, 'w': paddle.ones([3])}, dest)
    before = dest.read_bytes()
    with pytest.raises(Exception):
        save_paddle_file({'epoch': 2, 'bad': lambda: 0}, dest)
    assert dest.read_bytes() == before
    assert os.listdir(tmp_path) == ['keep.pdparams']
    assert load_paddle_file(dest)['epoch'] == 1


# --------------------------------------------------------------------------------------------- hostile files

class _Reduce:
    """Pickles as ``fn(*args)``: what a malicious checkpoint does."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class _SetStateBomb:
    """Would touch the marker if its own __setstate__ ran (it must not: the class is never imported)."""

    marker = None

    def __setstate__(self, state):
        open(state['marker'], 'w').close()


def _hostile_payloads(marker):
    m = str(marker)
    yield 'os.system', pickle.dumps(_Reduce(os.system, (f'touch {m}',)), protocol=2)
    yield 'os.system_p0', f"cos\nsystem\n(S'touch {m}'\ntR.".encode()
    yield 'posix.system_inst', f"(S'touch {m}'\niposix\nsystem\n.".encode()
    yield 'builtins.eval', pickle.dumps(_Reduce(eval, (f"open({m!r}, 'w').close()",)), protocol=4)
    yield '__builtin__.eval_p0', f"c__builtin__\neval\n(S'open({m!r}, \"w\").close()'\ntR.".encode()
    yield 'builtins.exec', pickle.dumps(_Reduce(exec, (f"open({m!r}, 'w').close()",)), protocol=3)
    yield 'subprocess.Popen', pickle.dumps(_Reduce(subprocess.Popen, (['touch', m],)), protocol=4)
    yield 'subprocess.check_call', pickle.dumps(_Reduce(subprocess.check_call, (['touch', m],)), protocol=2)
    yield 'nested_in_checkpoint', pickle.dumps(
        {'state_dict': {'w': np.ones(3, np.float32)}, 'epoch': 1,
         'extra': [_Reduce(os.system, (f'touch {m}',))]}, protocol=4)
    yield 'bytes_of_huge_size', b'\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x7f\x85R.'  # 2 GiB of zeros
    yield 'getattr_chain', pickle.dumps(_Reduce(getattr, (_Reduce(__import__, ('os',)), 'system')), protocol=2)


@pytest.mark.parametrize('name', [n for n, _ in _hostile_payloads('m')])
def test_hostile_pickles_refused_without_side_effects(tmp_path, name):
    marker = tmp_path / 'PWNED'
    payload = dict(_hostile_payloads(marker))[name]
    path = tmp_path / 'evil.pdparams'
    path.write_bytes(payload)
    with pytest.raises(CheckpointFileError, match='refusing') as info:
        load_paddle_file(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_unknown_classes_load_as_inert_placeholders(tmp_path):
    """A checkpoint pickling e.g. its argparse config opens; no code from the file runs."""
    marker = tmp_path / 'PWNED'
    bomb = _SetStateBomb.__new__(_SetStateBomb)
    bomb.__dict__['marker'] = str(marker)
    obj = {'args': argparse.Namespace(lr=0.1, model='cream_14'), 'bomb': bomb, 'epoch': 3}
    path = tmp_path / 'args.pdparams'
    path.write_bytes(pickle.dumps(obj, protocol=2))
    loaded = load_paddle_file(path)
    assert loaded['epoch'] == 3
    assert isinstance(loaded['args'], UnknownObject) and loaded['args'].state == {'lr': 0.1, 'model': 'cream_14'}
    assert isinstance(loaded['bomb'], UnknownObject)
    assert not marker.exists()


@pytest.mark.parametrize('dtype_spec', ['O', '|O', 'V8'])
def test_object_and_void_arrays_refused(tmp_path, dtype_spec):
    # numpy.dtype(spec, False, True) by hand: object arrays would carry further pickles
    data = (b'\x80\x02cnumpy\ndtype\nq\x00X' + len(dtype_spec).to_bytes(4, 'little') + dtype_spec.encode()
            + b'\x89\x88\x87q\x01Rq\x02.')
    path = tmp_path / 'obj.pdparams'
    path.write_bytes(data)
    with pytest.raises(CheckpointFileError, match='refusing numpy dtype'):
        load_paddle_file(path)


@pytest.mark.parametrize('protocol', [2, 4])
def test_numpy_arrays_load_as_plain_arrays(tmp_path, protocol):
    arrays = {'le': np.arange(6, dtype=np.float32).reshape(2, 3), 'be': np.arange(3, dtype='>f8'),
              'fortran': np.asfortranarray(np.arange(6).reshape(2, 3)), 'c': np.array([1 + 2j], np.complex64),
              'scalar': np.float64(0.5), 'in_tuple': ('w', np.ones(2, np.int8))}
    path = tmp_path / 'np.pdparams'
    path.write_bytes(pickle.dumps(arrays, protocol=protocol))
    loaded = load_paddle_file(path)
    for key in ('le', 'be', 'fortran', 'c'):
        assert type(loaded[key]) is np.ndarray, key
        assert loaded[key].dtype == pickle.loads(pickle.dumps(arrays[key])).dtype, key  # numpy: native order
        np.testing.assert_array_equal(loaded[key], arrays[key])
    assert type(loaded['scalar']) is np.float64 and loaded['scalar'] == 0.5
    np.testing.assert_array_equal(loaded['in_tuple'], [1, 1])


def test_dtype_state_cannot_make_an_object_dtype(tmp_path):
    """numpy's dtype.__setstate__ would accept object flags/fields: the array's raw bytes as pointers."""
    data = pickle.dumps(np.arange(2.0), protocol=2)
    state = b'J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t'  # (..., elsize -1, alignment -1, flags 0)
    assert data.count(state) == 1
    path = tmp_path / 'flags.pdparams'
    path.write_bytes(data.replace(state, b'J\xff\xff\xff\xffJ\xff\xff\xff\xffK?t'))  # flags 0x3f
    loaded = load_paddle_file(path)
    assert loaded.dtype == np.float64 and not loaded.dtype.hasobject
    np.testing.assert_array_equal(loaded, [0.0, 1.0])


@pytest.mark.parametrize('state, fragment', [
    ((1, (3,), 'DTYPE', False, b'\x00' * 8), 'malformed numpy float64 array'),  # too few bytes
    ((1, (2 ** 40,), 'DTYPE', False, b''), 'malformed numpy float64 array'),
    ((1, (-1,), 'DTYPE', False, b''), 'malformed numpy array shape'),
    ((1, (1,), None, False, b'\x00' * 8), 'refusing numpy data of dtype'),
    ((1, (1,), 'DTYPE', False, [None]), 'malformed numpy float64 array'),  # object pickles carry lists
])
def test_malformed_array_states_refused(tmp_path, state, fragment):
    dtype_ops = b'cnumpy\ndtype\n(X\x02\x00\x00\x00f8\x89\x88tR'
    body = b''.join(pickle.dumps(v, protocol=2)[2:-1] if v != 'DTYPE' else dtype_ops for v in state)
    data = (b'\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R('
            + body + b'tb.')
    path = tmp_path / 'bad.pdparams'
    path.write_bytes(data)
    with pytest.raises(CheckpointFileError, match=fragment):
        load_paddle_file(path)


def _real_checkpoint_bytes(tmp_path):
    path = tmp_path / 'real.pdparams'
    save_paddle_file({'state_dict': collections.OrderedDict(w=paddle.randn([4, 3]), b=paddle.zeros([3])),
                      'epoch': 2, 'version': 2}, path)
    return path.read_bytes()


def test_truncated_files_raise_checkpoint_error(tmp_path):
    data = _real_checkpoint_bytes(tmp_path)
    path = tmp_path / 'trunc.pdparams'
    for n in range(1, len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(CheckpointFileError):
            load_paddle_file(path)


def test_empty_file(tmp_path):
    path = tmp_path / 'empty.pdparams'
    path.write_bytes(b'')
    with pytest.raises(CheckpointFileError, match='empty file'):
        load_paddle_file(path)


@pytest.mark.parametrize('seed', range(40))
def test_random_bytes_raise_checkpoint_error(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / 'noise.pdparams'
    path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))))
    with pytest.raises(CheckpointFileError) as info:
        load_paddle_file(path)
    assert '\n' not in str(info.value)


def test_other_formats_raise_checkpoint_error(tmp_path):
    for name, data in [('zip', b'PK\x03\x04' + b'\x00' * 40), ('text', b'hello world\n'), ('json', b'{"a": 1}'),
                       ('torch', None)]:
        path = tmp_path / f'{name}.bin'
        if data is None:
            torch.save({'w': torch.ones(2)}, path)  # a zip archive of pickles, not a Paddle file
        else:
            path.write_bytes(data)
        with pytest.raises(CheckpointFileError):
            load_paddle_file(path)


def test_mutated_checkpoints_never_raise_other_exceptions(tmp_path):
    data = _real_checkpoint_bytes(tmp_path)
    rng = random.Random(0)
    path = tmp_path / 'mut.pdparams'
    for _ in range(300):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.getrandbits(8)
        path.write_bytes(bytes(b))
        try:
            load_paddle_file(path)
        except CheckpointFileError:
            pass


@pytest.mark.parametrize('opcode', [b']', b'}', b')'], ids=['list', 'dict', 'tuple'])
def test_deeply_nested_pickle_raises_checkpoint_error(tmp_path, opcode):
    n = 100_000
    if opcode == b']':
        data = b'\x80\x02' + b']' * n + b'a' * (n - 1) + b'.'
    elif opcode == b'}':
        data = b'\x80\x02' + b'}' + b'K\x00}' * (n - 1) + b's' * (n - 1) + b'.'
    else:
        data = b'\x80\x02' + b')' + b'\x85' * n + b'.'
    path = tmp_path / 'deep.pdparams'
    path.write_bytes(data)
    with pytest.raises(CheckpointFileError):
        load_paddle_file(path)


@pytest.mark.parametrize('payload', [
    b'\x80\x02N' + b'r' + (2 ** 31).to_bytes(4, 'little') + b'.',  # LONG_BINPUT
    b'Np4000000000\n.',  # protocol-0 PUT
], ids=['LONG_BINPUT', 'PUT'])
def test_huge_memo_index_refused_before_allocating(tmp_path, payload):
    """The C unpickler would grow its memo to 2x the index (tens of GB) before failing."""
    path = tmp_path / 'memo.pdparams'
    path.write_bytes(payload)
    with pytest.raises(CheckpointFileError, match='refusing memo index'):
        load_paddle_file(path)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(CheckpointFileError, match='no such file'):
        load_paddle_file(tmp_path / 'nope.pdparams')
    with pytest.raises(CheckpointFileError, match='not a file'):
        load_paddle_file(tmp_path)


def test_oversize_file_refused_before_reading(tmp_path):
    path = tmp_path / 'big.pdparams'
    save_paddle_file({'w': paddle.ones([64])}, path)
    size = path.stat().st_size
    assert load_paddle_file(path, max_bytes=size)['w'].shape == (64,)  # the limit itself is allowed
    with pytest.raises(CheckpointFileError) as info:
        load_paddle_file(path, max_bytes=size - 1)
    assert str(info.value) == (f'{path}: {size} bytes is over the {size - 1} bytes limit of load_paddle_file '
                               f'(max_bytes); refusing to read it into memory')


def test_default_limit_refuses_a_huge_sparse_file(tmp_path):
    """A 64 GiB checkpoint (sparse: no disk used) is refused at once, not read into memory."""
    path = tmp_path / 'huge.pdparams'
    with open(path, 'wb') as f:
        f.truncate(64 * 1024 ** 3)
    with pytest.raises(CheckpointFileError, match=r'64\.0 GiB is over the 8\.0 GiB limit') as info:
        load_paddle_file(path)
    assert '\n' not in str(info.value)


def test_unreadable_checkpoint_is_one_line(tmp_path, monkeypatch):
    import builtins
    import errno
    path = tmp_path / 'locked.pdparams'
    save_paddle_file({'epoch': 1}, path)
    real_os_open, real_open = os.open, builtins.open

    def deny(real):
        def opener(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(path):
                raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(file))
            return real(file, *args, **kwargs)
        return opener
    monkeypatch.setattr(os, 'open', deny(real_os_open))  # chmod 000 means nothing to root: refuse by hand
    monkeypatch.setattr(builtins, 'open', deny(real_open))
    with pytest.raises(CheckpointFileError) as info:
        load_paddle_file(path)
    assert str(info.value) == f'{path}: cannot open file (Permission denied)'


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='FIFOs are POSIX-only')
def test_fifo_checkpoint_refused_without_blocking(tmp_path):
    path = tmp_path / 'pipe.pdparams'
    os.mkfifo(path)
    with pytest.raises(CheckpointFileError, match='not a regular file'):
        load_paddle_file(path)


# --------------------------------------------------------------------------------------------- load_checkpoint

def _model(seed):
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():
        model = InvertedResidual(8, 8, exp_ratio=2, drop_path_rate=0.)
    for name, p in model.state_dict().items():  # distinct values everywhere, BN stats included
        p.set_value(paddle.uniform(p.shape, min=0.5, max=1.5))
    return model


def _numpy_state(model, prefix=''):
    return collections.OrderedDict((prefix + k, v.numpy()) for k, v in model.state_dict().items())


def _assert_model_has(model, state):
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k], err_msg=k)


@pytest.mark.parametrize('layout', ['bare', 'state_dict', 'model', 'module_prefix', 'ema_only_raw'])
def test_load_checkpoint_layouts(tmp_path, layout):
    src = _numpy_state(_model(1))
    if layout == 'bare':
        ckpt = src
    elif layout == 'state_dict':
        ckpt = {'state_dict': src, 'epoch': 3}
    elif layout == 'model':
        ckpt = {'model': src}
    elif layout == 'module_prefix':
        ckpt = {'state_dict': collections.OrderedDict(('module.' + k, v) for k, v in src.items())}
    else:
        ckpt = {'state_dict': src, 'args': None}
    path = tmp_path / 'c.pdparams'
    save_paddle_file(ckpt, path)
    dst = _model(2)
    load_checkpoint(dst, str(path))
    _assert_model_has(dst, src)


@pytest.mark.parametrize('writer', [paddle.save, save_paddle_file], ids=['paddle.save', 'save_paddle_file'])
def test_load_checkpoint_of_saved_layer_state_dict(tmp_path, writer):
    """paddle.save(model.state_dict()) adds a 'StructuredToParameterName@@' name table: not a weight."""
    src = _model(1)
    path = str(tmp_path / 'layer.pdparams')
    writer(src.state_dict(), path)
    assert 'StructuredToParameterName@@' not in load_paddle_file(path)
    dst = _model(2)
    load_checkpoint(dst, path)
    _assert_model_has(dst, _numpy_state(src))


@pytest.mark.parametrize('use_ema', [True, False])
def test_load_checkpoint_prefers_ema_when_asked(tmp_path, use_ema):
    raw, ema = _numpy_state(_model(1)), _numpy_state(_model(3))
    path = tmp_path / 'c.pdparams'
    save_paddle_file({'state_dict': raw, 'state_dict_ema': ema, 'epoch': 9}, path)
    dst = _model(2)
    load_checkpoint(dst, str(path), use_ema=use_ema)
    _assert_model_has(dst, ema if use_ema else raw)
    assert set(load_state_dict(str(path), use_ema)) == set(raw)


@pytest.mark.filterwarnings('ignore:Skip loading for')
def test_load_checkpoint_strict_missing_key(tmp_path):
    src = _numpy_state(_model(1))
    first = next(iter(src))
    del src[first]
    path = tmp_path / 'c.pdparams'
    save_paddle_file({'state_dict': src}, path)
    dst = _model(2)
    before = _numpy_state(dst)
    with pytest.raises(KeyError) as info:
        load_checkpoint(dst, str(path))
    assert f'1 missing key(s), first: {first}' in str(info.value)
    _assert_model_has(dst, before)  # nothing loaded
    load_checkpoint(dst, str(path), strict=False)  # non-strict loads the rest
    src[first] = before[first]
    _assert_model_has(dst, src)


def test_load_checkpoint_strict_unexpected_key(tmp_path):
    src = _numpy_state(_model(1))
    src['head.fc.weight'] = np.zeros((3, 4), np.float32)
    path = tmp_path / 'c.pdparams'
    save_paddle_file(src, path)
    dst = _model(2)
    before = _numpy_state(dst)
    with pytest.raises(KeyError, match='1 unexpected key\\(s\\), first: head.fc.weight'):
        load_checkpoint(dst, str(path))
    _assert_model_has(dst, before)


def test_load_checkpoint_strict_shape_mismatch(tmp_path):
    src = _numpy_state(_model(1))
    src['bn1.weight'] = np.ones(5, np.float32)
    path = tmp_path / 'c.pdparams'
    save_paddle_file(src, path)
    with pytest.raises(KeyError, match=r'shape mismatch.*bn1.weight \(5,\) vs model \(16,\)'):
        load_checkpoint(_model(2), str(path))


def test_load_checkpoint_not_a_dict(tmp_path):
    path = tmp_path / 'c.pdparams'
    save_paddle_file([1, 2, 3], path)
    with pytest.raises(CheckpointFileError, match='expected a dict'):
        load_checkpoint(_model(2), str(path))


def test_load_checkpoint_hostile_file_refused(tmp_path):
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'c.pdparams'
    path.write_bytes(dict(_hostile_payloads(marker))['nested_in_checkpoint'])
    with pytest.raises(CheckpointFileError, match='refusing'):
        load_checkpoint(_model(2), str(path))
    assert not marker.exists()


# --------------------------------------------------------------------------------------------- resume_checkpoint

def _timm_resume_epoch(tmp_path, epoch, version):
    """What timm's resume_checkpoint returns for the same checkpoint metadata (the oracle)."""
    model = torch.nn.Linear(2, 2)
    ckpt = {'state_dict': model.state_dict()}
    if epoch is not None:
        ckpt['epoch'] = epoch
    if version is not None:
        ckpt['version'] = version
    path = tmp_path / 'timm.pth.tar'
    torch.save(ckpt, path)
    return timm_helpers.resume_checkpoint(model, str(path), log_info=False)


@pytest.mark.parametrize('epoch,version', [(4, 2), (4, 1), (4, None), (0, 2), (None, 2)])
def test_resume_checkpoint_epoch_matches_timm(tmp_path, epoch, version):
    src = _numpy_state(_model(1))
    ckpt = {'state_dict': src, 'args': argparse.Namespace(lr=0.1)}
    if epoch is not None:
        ckpt['epoch'] = epoch
    if version is not None:
        ckpt['version'] = version
    path = tmp_path / 'c.pdparams'
    save_paddle_file(ckpt, path)
    dst = _model(2)
    got = resume_checkpoint(dst, str(path), log_info=False)
    assert got == _timm_resume_epoch(tmp_path, epoch, version)
    if epoch is not None and version == 2:
        assert got == epoch + 1
    _assert_model_has(dst, src)


@pytest.mark.filterwarnings('ignore:When training, we now always track')
def test_resume_checkpoint_restores_weights_and_optimizer(tmp_path):
    def make():
        with paddle.utils.unique_name.guard():
            model = _model(1)
            opt = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters())
        return model, opt

    model, opt = make()
    model.train()
    loss = model(paddle.randn([2, 8, 5, 5])).square().mean()
    loss.backward()
    opt.step()
    state = {'state_dict': collections.OrderedDict(('module.' + k, v) for k, v in model.state_dict().items()),
             'optimizer': opt.state_dict(), 'epoch': 7, 'version': 2}
    path = tmp_path / 'last.pdparams'
    save_paddle_file(state, path)

    fresh, fresh_opt = make()
    fresh.set_state_dict({k: paddle.zeros_like(v) for k, v in fresh.state_dict().items()})
    assert resume_checkpoint(fresh, str(path), optimizer=fresh_opt, log_info=False) == 8
    _assert_model_has(fresh, _numpy_state(model))
    expected = opt.state_dict()
    got = fresh_opt.state_dict()
    moments = [k for k in expected if 'moment' in k]
    assert moments
    for k in moments:
        np.testing.assert_array_equal(np.asarray(got[k]), expected[k].numpy(), err_msg=k)


def test_resume_checkpoint_bare_state_dict_returns_none(tmp_path):
    src = _numpy_state(_model(1))
    path = tmp_path / 'c.pdparams'
    save_paddle_file(src, path)
    dst = _model(2)
    assert resume_checkpoint(dst, str(path), log_info=False) is None
    _assert_model_has(dst, src)


def test_resume_checkpoint_strict(tmp_path):
    src = _numpy_state(_model(1))
    src.popitem()
    path = tmp_path / 'c.pdparams'
    save_paddle_file({'state_dict': src, 'epoch': 1}, path)
    with pytest.raises(KeyError, match='missing key'):
        resume_checkpoint(_model(2), str(path), log_info=False)
