"""The config declarations: every key's default fits its declaration, every kind refuses what it should
in one line naming the key, shipped configs load, hostile files are refused quickly, and the CLI turns
all of it into one ``error:`` line before any run folder exists."""
import glob
import os
import time

import numpy as np
import pytest

from cli import REPO_ROOT, run_main
from Paddle_Cream.config import ConfigError, load_config
from Paddle_Cream.config.declare import check_value
from Paddle_Cream.config.defaults import DEFAULTS, MAX_IMAGE_SIZE, SCHEMA, declaration
from Paddle_Cream.config.yaml_guard import MAX_CONFIG_BYTES

DEMO_TRAIN = os.path.join(REPO_ROOT, 'configs', 'demo', 'train.yaml')
SHIPPED = sorted(glob.glob(os.path.join(REPO_ROOT, 'configs', '*.yaml')) +
                 glob.glob(os.path.join(REPO_ROOT, 'configs', '*', '*.yaml')))
SEVEN = '[[0],[3],[3],[3],[3],[3],[0]]'


def _leaves(tree, prefix=''):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + k + '.')
        else:
            yield prefix + k, v


def refused(*overrides, path=DEMO_TRAIN) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path, [str(o) for o in overrides])
    message = str(err.value)
    assert '\n' not in message
    return message


def test_every_default_fits_its_declaration():
    for key, decl in _leaves(SCHEMA):
        assert check_value(key, decl, decl.default) == decl.default, key
    assert dict(_leaves(DEFAULTS)).keys() == dict(_leaves(SCHEMA)).keys()


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_every_shipped_config_loads(path):
    assert load_config(path).MODEL


# (key, value as typed on the command line, words the message must hold besides the key)
BAD_VALUES = [
    # flags
    ('AMP', 'maybe', ['True or False']),
    ('NET.EMA.USE', '2', ['True or False']),
    # integers: type, minimum, maximum, the 0 = "model's own size" exception
    ('DATASET.BATCH_SIZE', '0', ['1..8192', 'got 0']),
    ('EPOCHS', '-1', ['>= 1']),
    ('EPOCHS', '0', ['>= 1']),
    ('EPOCHS', '1.5', ['integer']),
    ('EPOCHS', 'True', ['integer']),
    ('EPOCHS', '[3]', ['integer']),
    ('WORKERS', '-2', ['0..']),
    ('SEED', '-1', ['0..']),
    ('SEED', str(2 ** 31), ['2147483647']),
    ('SEED', '1' * 5000, ['integer']),
    ('DATASET.NUM_CLASSES', '0', ['1..']),
    ('DATASET.VAL_BATCH_MUL', '0', ['1..']),
    ('NUM_GPU', '0', ['1..']),
    ('DATASET.IMAGE_SIZE', '-5', ['0', '16..2048']),
    ('DATASET.IMAGE_SIZE', '8', ['16..2048']),
    ('DATASET.IMAGE_SIZE', '100000', [str(MAX_IMAGE_SIZE)]),
    ('CHECKPOINT_HIST', '0', ['>= 1']),
    ('RANK.NUM_PATHS', '1', ['>= 2']),
    ('EVOLVE.BN_BATCHES', '0', ['>= 1']),
    ('EVOLVE.MUTATION_NUM', '-1', ['>= 0']),
    ('SUPERNET.SLICE', '0', ['>= 1']),
    ('SUPERNET.FLOPS_MAXIMUM', '-600', ['>= 0']),
    ('AUGMENTATION.RE_COUNT', '0', ['1..']),
    # numbers: finite, open and closed ends
    ('LR', 'nan', ['finite', '> 0']),
    ('LR', '.inf', ['finite']),
    ('LR', '0', ['> 0']),
    ('LR', 'abc', ['number']),
    ('LR', '[0.1]', ['number']),
    ('NET.EMA.DECAY', '2', ['[0, 1]']),
    ('NET.EMA.DECAY', '-0.1', ['[0, 1]']),
    ('DATASET.CROP_PCT', '0', ['(0, 1]']),
    ('DATASET.CROP_PCT', '1.5', ['(0, 1]']),
    ('AUGMENTATION.SMOOTHING', '1.0', ['[0, 1)']),
    ('NET.DROPOUT_RATE', '1', ['[0, 1)']),
    ('NET.DROP_PATH_RATE', '-0.5', ['[0, 1)']),
    ('EVOLVE.MUTATION_PROB', '1.5', ['[0, 1]']),
    ('AUGMENTATION.HFLIP', '-0.1', ['[0, 1]']),
    ('WEIGHT_DECAY', '-1e-4', ['>= 0']),
    ('MOMENTUM', '1.0', ['[0, 1)']),
    ('LR_NOISE_PCT', '0', ['(0, 1]']),
    ('DECAY_EPOCHS', '0', ['> 0']),
    ('BATCHNORM.BN_EPS', '0', ['> 0']),
    # choices
    ('AUGMENTATION.TRAIN_INTERPOLATION', 'lanczosX', ['one of', 'random', 'bicubic']),
    ('DATASET.INTERPOLATION', 'random', ['one of', 'bicubic']),     # evaluation has no random interpolation
    ('INFERENCE', 'gpu', ['auto', 'dygraph', 'paddle', 'onnxruntime', 'openvino']),
    ('DATASET.DEMO', 'foo', ["''", 'digits']),
    ('OPT', 'lamb', ['OPT must be one of', 'rmsproptf']),
    ('SCHED', 'plateau', ['cosine', 'step']),
    ('EVAL_METRICS', 'top1', ['prec1', 'loss']),
    ('SUPERNET.METHOD', 'darts', ['cream', 'spos']),
    ('SUPERNET.PICK_METHOD', 'best', ['meta', 'top1']),
    ('SUPERNET.HOW_TO_PROB', 'uniform', ['pre_prob', 'teacher']),
    ('NET.GP', "''", ['avg', 'catavgmax']),
    ('AUGMENTATION.RE_MODE', 'pix', ['const', 'pixel']),
    ('NET.SELECTION', '15', ['-1', '14', '604']),
    # names and paths
    ('MODEL', "''", ['plain name']),
    ('MODEL', '/../../../x', ['plain name', "no '/'"]),
    ('MODEL', '..', ['plain name']),
    ('MODEL', 'a/b', ['plain name']),
    ('MODEL', 'x' * 101, ['100 characters']),
    ('DATASET.TRAIN_SPLIT', '../train', ['plain name']),
    ('DATA_DIR', "''", ['non-empty path']),
    ('SAVE_PATH', "''", ['non-empty path']),
    ('RESUME_PATH', 'a\x00b', ['NUL']),
    ('AUGMENTATION.AA', 'foo', ['RandAugment', "'rand'"]),
    ('AUGMENTATION.AA', 'rand-m9-zz', ['RandAugment', "'zz'"]),
    # lists: shape, size, element range, whole-list rules
    ('AUGMENTATION.SCALE', '[1.0]', ['2 numbers', '1 item']),
    ('AUGMENTATION.SCALE', '[0.9, 0.5]', ['min <= max']),
    ('AUGMENTATION.SCALE', '[0, 1]', ['0 < min', 'item 0']),
    ('AUGMENTATION.SCALE', '[0.5, 1.5]', ['max <= 1', 'item 1']),
    ('AUGMENTATION.SCALE', '0.5', ['2 numbers']),
    ('SUPERNET.PRE_PROB', '[0.5,0.5]', ['6 numbers', '2 items']),
    ('SUPERNET.PRE_PROB', '[0,0,0,0,0,0]', ['positive sum']),
    ('SUPERNET.PRE_PROB', '[-1,1,1,1,1,1]', ['>= 0', 'item 0']),
    ('SUPERNET.PRE_PROB', '[' + ','.join(['0.1'] * 10 ** 5) + ']', ['6 numbers']),   # over the YAML value cap
    ('NET.INPUT_ARCH', '[[0],[9]]', ['7 stages', '2 items']),
    ('NET.INPUT_ARCH', '[[0],[9],[0],[0],[0],[0],[0]]', ['0..5', 'item 1']),
    ('NET.INPUT_ARCH', '[[0],[],[0],[0],[0],[0],[0]]', ['1 to 8']),
    ('NET.INPUT_ARCH', '[[0],[0,0,0,0,0,0,0,0,0],[0],[0],[0],[0],[0]]', ['1 to 8', '9 items']),
    ('NET.INPUT_ARCH', '[[0],"abc",[0],[0],[0],[0],[0]]', ['7 stages']),
    # optional numbers (None when unset)
    ('LR_NOISE', 'abc', ['None or']),
    ('LR_NOISE', '-1', ['>= 0']),
    ('LR_NOISE', '[0.5, 0.2]', ['ascending']),
    ('LR_NOISE', '[0.1, 0.2, 0.3]', ['1 or 2']),
    ('START_EPOCH', '-1', ['None or an integer >= 0']),
    ('START_EPOCH', '1.5', ['None or an integer']),
    ('EVOLVE.FLOPS_LIMIT', '0', ['None or', '> 0']),
    ('EVOLVE.FLOPS_LIMIT', '[100]', ['None or']),
    ('RANK.RETRAIN_EPOCHS', '0', ['None or an integer >= 1']),
    # an alias in an override is never expanded: it stays a string, refused as one
    ('SUPERNET.PRE_PROB', '[&a [1,1,1,1,1,1], *a]', ['6 numbers']),
]


@pytest.mark.parametrize('key, value, words', BAD_VALUES, ids=[f'{k}={v[:20]}' for k, v, _ in BAD_VALUES])
def test_bad_value_is_refused_naming_the_key(key, value, words):
    message = refused(key, value)
    assert message.startswith(f'config key {key} must be '), message
    assert 'got ' in message and len(message) < 400, message
    for w in words:
        assert w in message, message


@pytest.mark.parametrize('key, value, expected', [
    ('LR_NOISE', 'None', None), ('LR_NOISE', "''", None), ('LR_NOISE', '[0.5]', [0.5]), ('LR_NOISE', '0.3', 0.3),
    ('LR_NOISE', '[0.2, 0.8]', [0.2, 0.8]), ('START_EPOCH', 'None', None), ('START_EPOCH', '3', 3),
    ('EVOLVE.FLOPS_LIMIT', 'None', None), ('EVOLVE.FLOPS_LIMIT', '150', 150.0), ('RANK.RETRAIN_EPOCHS', '2', 2),
    ('OPT', 'AdamW', 'adamw'), ('SCHED', 'Cosine', 'cosine'), ('DATASET.IMAGE_SIZE', '0', 0),
    ('DATASET.IMAGE_SIZE', '16', 16), ('DATASET.IMAGE_SIZE', str(MAX_IMAGE_SIZE), MAX_IMAGE_SIZE),
    ('LR', '1e-4', 1e-4), ('EPOCHS', '3.0', 3), ('AMP', 'false', False), ('MODEL', 'my-run_2.b', 'my-run_2.b'),
    ('AUGMENTATION.SCALE', '[0.5, 0.5]', [0.5, 0.5]), ('AUGMENTATION.AA', "''", ''),
    ('NET.INPUT_ARCH', SEVEN, [[0], [3], [3], [3], [3], [3], [0]]), ('NET.SELECTION', '-1', -1),
    # values the engine refuses with its own reason (BN, recovery, search space) pass the declaration
    ('BATCHNORM.BN_EPS', '0.001', 0.001), ('RECOVERY_INTERVAL', '100', 100), ('SUPERNET.RESUNIT', 'True', True),
    ('SUPERNET.UPDATE_2ND', 'False', False), ('BATCHNORM.BN_TF', 'True', True),
])
def test_good_value_is_converted(key, value, expected):
    cfg = load_config(DEMO_TRAIN, [key, value])
    assert cfg.get(key) == expected and type(cfg.get(key)) is type(expected)


def test_a_huge_list_is_refused_by_its_length_before_its_items():
    cfg = load_config(DEMO_TRAIN)
    start = time.time()
    with pytest.raises(ConfigError, match='10000000 items'):
        cfg.set('SUPERNET.PRE_PROB', [0.1] * 10 ** 7)
    assert time.time() - start < 1


def test_official_none_strings_are_accepted():
    cfg = load_config(os.path.join(REPO_ROOT, 'configs', 'evolve.yaml'))
    assert cfg.EVOLVE.FLOPS_LIMIT is None


def test_set_after_loading_is_checked_too():
    cfg = load_config(DEMO_TRAIN)
    cfg.set('RESUME_PATH', '/some/checkpoint-last.pdparams')
    with pytest.raises(ConfigError, match='config key EPOCHS'):
        cfg.set('EPOCHS', 0)


def test_unknown_key_still_names_the_closest():
    assert "did you mean 'DATASET.BATCH_SIZE'" in refused('DATASET.BATCH_SIZ', 8)
    assert declaration('DATASET') is not None and declaration('DATASET.NOPE') is None


def write(tmp_path, name, content) -> str:
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return str(path)


def test_a_bad_value_in_a_file_names_the_file(tmp_path):
    path = write(tmp_path, 'bad.yaml', 'DATASET:\n  BATCH_SIZE: 0\n')
    message = refused(path=path)
    assert 'config key DATASET.BATCH_SIZE' in message and 'bad.yaml' in message


def alias_bomb() -> str:
    """About 400 bytes: seven alias levels in one list value, 10**7 elements once expanded."""
    levels = ['&l0 [0,0,0,0,0,0,0,0,0,0]'] + [f'&l{i} [' + ','.join([f'*l{i - 1}'] * 10) + ']' for i in range(1, 7)]
    return 'MODEL: bomb\nSUPERNET:\n  PRE_PROB: [' + ', '.join(levels) + ']\n'


@pytest.mark.parametrize('name, content, words', [
    ('bomb.yaml', alias_bomb(), ['alias']),
    ('latin1.yaml', 'MODEL: caf\xe9\n'.encode('latin-1'), ['not UTF-8', '0xe9']),
    ('huge.yaml', '# ' + 'x' * MAX_CONFIG_BYTES + '\n', ['larger than 1024 KB']),
    ('deep.yaml', 'NET:\n  INPUT_ARCH: ' + '[' * 50000 + ']' * 50000 + '\n', ['deep']),
    ('wide.yaml', 'SUPERNET:\n  PRE_PROB: [' + ','.join(['0'] * 20000) + ']\n', ['more than']),
    ('broken.yaml', 'MODEL: [unclosed\n', ['not valid YAML', 'line']),
    ('list.yaml', '- MODEL\n', ['mapping']),
    ('bigint.yaml', 'SEED: ' + '1' * 5000 + '\n', ['cannot convert']),
])
def test_hostile_file_is_refused_quickly(tmp_path, name, content, words):
    path = write(tmp_path, name, content)
    start = time.time()
    message = refused(path=path)
    assert time.time() - start < 5, 'the guard must refuse before the document is built'
    assert name in message, message
    for w in words:
        assert w in message, message


def test_bomb_is_small():
    assert len(alias_bomb()) < 500


def test_unreadable_file_is_refused(tmp_path):
    path = write(tmp_path, 'secret.yaml', 'MODEL: x\n')
    os.chmod(path, 0)
    try:
        if os.geteuid() == 0:
            pytest.skip('running as root: chmod 000 does not stop root reading the file')
        assert 'cannot be read' in refused(path=path)
    finally:
        os.chmod(path, 0o600)


def test_missing_or_empty_name_file_is_refused(tmp_path):
    assert 'not found' in refused(path=str(tmp_path / 'missing.yaml'))
    assert "config file '' not found" in refused(path='')
    assert load_config(write(tmp_path, 'empty.yaml', '')).MODEL == DEFAULTS['MODEL']


# ---- the command line: exit 1, one error line, no traceback, no run folder ----

def _cli_refuses(tmp_path, mode, config, *extra, words=()):
    out = tmp_path / 'out'
    proc = run_main([mode, config, 'SAVE_PATH', out, *extra], timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error:'), proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr + proc.stdout
    for w in words:
        assert w in lines[0], lines[0]
    assert not out.exists() or not os.listdir(out), os.listdir(out)


@pytest.mark.parametrize('mode, config, extra, words', [
    ('train', 'configs/demo/train.yaml', ['EPOCHS', '0'], ['config key EPOCHS', '>= 1']),
    ('train', 'configs/demo/train.yaml', ['LR', 'nan'], ['config key LR', 'finite']),
    ('train', 'configs/demo/train.yaml', ['MODEL', '/../../../x'], ['config key MODEL', 'plain name']),
    ('retrain', 'configs/demo/retrain.yaml', ['DATASET.BATCH_SIZE', '0'], ['config key DATASET.BATCH_SIZE']),
    ('test', 'configs/demo/test.yaml', ['INFERENCE', 'gpu'], ['config key INFERENCE', 'openvino']),
    ('retrain', 'configs/demo/retrain.yaml', ['DATASET.IMAGE_SIZE', '100000'], ['2048']),
])
def test_cli_refuses_a_bad_value_in_one_line(tmp_path, mode, config, extra, words):
    _cli_refuses(tmp_path, mode, config, *extra, words=words)


def test_cli_refuses_an_alias_bomb(tmp_path):
    path = write(tmp_path, 'bomb.yaml', alias_bomb())
    _cli_refuses(tmp_path, 'train', path, words=['bomb.yaml', 'alias'])


def test_the_docs_list_exactly_the_keys_fixed_on_resume():
    """docs/usage.md 'Resuming' is the user's list of what a resume may not change: it must be the declarations'."""
    import os
    import re
    from Paddle_Cream.config.config import all_keys
    from Paddle_Cream.config.defaults import declaration
    with open(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'docs', 'usage.md')) as f:
        readme = f.read()
    for mode in ('train', 'retrain'):
        row = re.search(rf'^\| {mode} \| (.*) \|$', readme, re.M)
        listed = set(re.findall(r'`([A-Z_.]+)`', row.group(1)))
        declared = {k for k in all_keys() if mode in declaration(k).fixed_on_resume}
        assert listed == declared, (mode, listed ^ declared)


def test_the_default_choice_prior_is_the_papers_pre_prob():
    """docs/reference.md §5 step 1: the official PRE_PROB (0.05, 0.2, 0.05, 0.5, 0.05, 0.15) over choices 0..5 (§1's
    order, the 0.5 on k5 e6), written out here: the default config and the official train config hold it
    exactly, and the sampler the default config builds draws from it (normalised: 1e-12 absolute, the
    literal sums to 1 up to float rounding)."""
    from types import SimpleNamespace

    from Paddle_Cream.engine.search_budget import SearchSpace, make_sampler
    from Paddle_Cream.models.search_space import CHOICES
    paper = [0.05, 0.2, 0.05, 0.5, 0.05, 0.15]
    assert CHOICES == ((3, 4), (3, 6), (5, 4), (5, 6), (7, 4), (7, 6))
    cfg = load_config()
    assert list(cfg.SUPERNET.PRE_PROB) == paper and cfg.SUPERNET.HOW_TO_PROB == 'pre_prob'
    assert list(load_config(os.path.join(REPO_ROOT, 'configs', 'train.yaml')).SUPERNET.PRE_PROB) == paper
    space = SearchSpace([1] * 5, 224, SimpleNamespace(flops=lambda path: 1.), (0., 10.))
    np.testing.assert_allclose(make_sampler(cfg, space, seed=0).choice_prob(), paper, rtol=0, atol=1e-12)
