"""``build_model`` for a searched architecture: the input size an arch file carries, and its validation."""
import json

import pytest

from Paddle_Cream.config import load_config
from Paddle_Cream.engine.errors import UserError
from Paddle_Cream.engine.model_builder import build_model

ARCH = [[0], [3], [3], [3, 1], [3], [3], [0]]


def arch_file(tmp_path, **extra):
    path = tmp_path / 'best_arch.json'
    path.write_text(json.dumps(dict(arch=ARCH, flops=50.0, **extra)))
    return str(path)


def info_for(*overrides):
    cfg = load_config('configs/retrain/retrain.yaml', [str(o) for o in overrides])
    return build_model(cfg)[1]


@pytest.mark.parametrize('extra, image_size, expected', [
    (dict(resolution=160), 0, 160),   # the search's resolution, where its FLOPs were counted
    (dict(resolution=160), 96, 96),   # DATASET.IMAGE_SIZE wins when set
    ({}, 0, 224),                     # a file without one: 224
])
def test_arch_file_input_size(tmp_path, extra, image_size, expected):
    info = info_for('NET.SELECTION', -1, 'NET.ARCH_FILE', arch_file(tmp_path, **extra),
                    'DATASET.IMAGE_SIZE', image_size)
    assert (info.name, info.path, info.input_size) == ('ChildNet', ARCH, expected)


@pytest.mark.parametrize('latency_ms, carried', [(2.5, True), (0, False), ('2.5', False), (True, False)])
def test_arch_file_latency_is_carried_when_it_is_a_positive_number(tmp_path, latency_ms, carried):
    table = {'file': '/t.json', 'digest': 'abc', 'settings': {}}
    info = info_for('NET.SELECTION', -1, 'NET.ARCH_FILE', arch_file(tmp_path, latency_ms=latency_ms,
                                                                    latency_table=table, latency_limit=3.0))
    assert info.latency == ({'latency_ms': latency_ms, 'latency_table': table} if carried else {})


def test_input_arch_defaults_to_224():
    info = info_for('NET.SELECTION', -1, 'NET.INPUT_ARCH', json.dumps(ARCH).replace(' ', ''))
    assert (info.path, info.input_size, info.latency) == (ARCH, 224, {})


@pytest.mark.parametrize('resolution', ['224', 0, True, 1.5, 15, 100000])
def test_bad_resolution_is_refused(tmp_path, resolution):
    # 100000 would build a 30 GB input batch: the limit is in the message instead of a MemoryError
    with pytest.raises(UserError, match=r'not a valid architecture file: resolution must be an integer in 16\.\.2048'):
        info_for('NET.SELECTION', -1, 'NET.ARCH_FILE', arch_file(tmp_path, resolution=resolution))


@pytest.mark.parametrize('text, words', [
    ('[{"top1": 50.0, "path": [[0]]}]', 'no "arch" entry; expected the best_arch.json'),   # a board.json
    ('DATA_DIR: ./data\n', 'not JSON'),                                                  # a config
    ('{"arch": [[0], [1]]}', 'list of 7 lists'),
])
def test_wrong_arch_file_says_what_it_should_be(tmp_path, text, words):
    path = tmp_path / 'arch.json'
    path.write_text(text)
    with pytest.raises(UserError, match='is not a valid architecture file') as err:
        info_for('NET.SELECTION', -1, 'NET.ARCH_FILE', path)
    assert words in str(err.value) and '\n' not in str(err.value)
