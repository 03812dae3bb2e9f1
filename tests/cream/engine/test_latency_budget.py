"""``tools/main.py train`` under a latency budget at tiny size, with a synthetic latency table: the chosen
path, the board and the epochs keep to the budget; a resume keeps table and budget; a latency budget
alone takes the table's hypernetwork. (Bad tables and budgets: tests/tools/test_bad_input_table.py.)"""
import json
import os
import shutil

import pytest
import yaml

from cli import load_main, read_rows, run_dir, tiny_search_args
from latency import write_table
from Paddle_Cream.search import PathLatency
from pimm.utils.checkpoint_io import load_paddle_file, save_paddle_file

MODEL = 'demo_search'
LAYERS = [1, 1, 2, 1, 1]   # tiny_search_args' hypernetwork, at 224px
# ms; the synthetic table predicts 2.28 to 5.28 ms, and the demo prior's favourite path (every layer
# choice 3) 4.08 ms: paths with a layer at choice 4 or 5 are turned away
BUDGET = (3.5, 4.1)


def _args(digits, out, table, *extra, epochs=2):
    return tiny_search_args(digits, out, 'SUPERNET.LATENCY_TABLE', table, 'SUPERNET.LATENCY_MINIMUM', BUDGET[0],
                            'SUPERNET.LATENCY_MAXIMUM', BUDGET[1], *extra, epochs=epochs)


def _refused(capsys, argv):
    """The one ``error:`` line of ``main(argv)``, which must exit 1."""
    capsys.readouterr()
    assert load_main()(list(map(str, argv))) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error:'), lines
    return lines[0]


@pytest.fixture(scope='module')
def searched(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp('latency')
    table = write_table(root / 'latency_table.json', LAYERS)
    out = root / 'runs'
    assert load_main()(_args(digits, out, table)) == 0
    return table, out


def _read(out, name):
    with open(os.path.join(run_dir(out, MODEL), name)) as f:
        return f.read()


def test_the_chosen_path_and_the_board_keep_to_the_latency_budget(searched):
    table_file, out = searched
    table = PathLatency.load(table_file)
    best = json.loads(_read(out, 'best_arch.json'))
    assert best['latency_ms'] == table.predict(best['arch']) and BUDGET[0] <= best['latency_ms'] <= BUDGET[1]
    assert best['latency_budget'] == list(BUDGET) and best['flops_budget'] == [0, 150]
    assert best['latency_table'] == {'file': os.path.abspath(table_file), 'digest': table.digest(),
                                     'settings': json.loads(json.dumps(table.settings()))}
    board = json.loads(_read(out, 'board.json'))
    assert board and all(e['latency'] == table.predict(e['arch']) for e in board)
    assert all(BUDGET[0] <= e['latency'] <= BUDGET[1] for e in board)
    rows = read_rows(out, MODEL)
    assert len(rows) == 2 and all(BUDGET[0] <= float(r['eval_path_latency_ms']) <= BUDGET[1] for r in rows)
    log = _read(out, 'train.log')
    assert f"predicted {best['latency_ms']:.2f} ms (budget [3.5, 4.1]) with {table.describe()}" in log
    assert os.path.exists(os.path.join(run_dir(out, MODEL), 'board.png'))


def test_a_resume_keeps_the_table_and_the_budget(digits, searched, tmp_path, capsys):
    table_file, full = searched
    out = tmp_path / 'runs'
    shutil.copytree(full, out)
    with open(table_file) as f:
        changed = json.load(f)
    changed['fixed']['stem']['median_ms'] += 0.01   # same settings, another content
    other = write_table(tmp_path / 'other.json', LAYERS, table=changed)
    assert 'latency_table_sha1' in _refused(capsys, _args(digits, out, other, 'AUTO_RESUME', True, epochs=3))
    assert 'latency_budget' in _refused(capsys, _args(digits, out, table_file, 'AUTO_RESUME', True,
                                                      'SUPERNET.LATENCY_MAXIMUM', 4.2, epochs=3))
    assert 'latency_table_sha1' in _refused(capsys, tiny_search_args(digits, out, 'AUTO_RESUME', True, epochs=3))
    assert load_main()(_args(digits, out, table_file, 'AUTO_RESUME', True, epochs=3)) == 0
    assert 'resumed from' in _read(out, 'train.log') and len(read_rows(out, MODEL)) == 3


def test_a_checkpoint_from_before_latency_budgets_still_resumes(digits, searched, tmp_path):
    """Without the latency entries (search identity, board cost, entries' latency) a checkpoint is one from
    before latency budgets: a FLOPs-only search resumes it."""
    _, full = searched
    state = load_paddle_file(os.path.join(run_dir(full, MODEL), 'checkpoint-last.pdparams'))
    for key in ('latency_table_sha1', 'latency_budget'):
        del state['search'][key]
    del state['board']['cost']
    for entry in state['board']['entries']:
        del entry['latency']
    config = yaml.safe_load(state['config'])   # nor did its config have the latency keys
    for key in ('LATENCY_TABLE', 'LATENCY_MINIMUM', 'LATENCY_MAXIMUM'):
        del config['SUPERNET'][key]
    state['config'] = yaml.safe_dump(config)
    old = str(tmp_path / 'old.pdparams')
    save_paddle_file(state, old)
    out = tmp_path / 'runs'
    assert load_main()(tiny_search_args(digits, out, 'RESUME_PATH', old, epochs=3)) == 0
    best = json.loads(_read(out, 'best_arch.json'))
    assert best['latency_ms'] is None and best['latency_table'] is None and len(read_rows(out, MODEL)) == 3


def test_a_latency_budget_alone_takes_the_tables_hypernetwork(digits, tmp_path):
    """SUPERNET.FLOPS_MAXIMUM 0: no FLOPs budget; layers and resolution are the table's (SPOS here: its
    bins then split the latency budget)."""
    table = write_table(tmp_path / 'latency_table.json', [1, 1, 1, 1, 1], resolution=192)
    out = tmp_path / 'runs'
    assert load_main()(_args(digits, out, table, 'SUPERNET.FLOPS_MAXIMUM', 0, 'SUPERNET.METHOD', 'spos',
                             epochs=1)) == 0
    log = _read(out, 'train.log')
    assert 'layers per searched stage [1, 1, 1, 1, 1], search resolution 192px' in log and 'no FLOPs budget' in log
    assert f'EVOLVE.LATENCY_LIMIT {BUDGET[1]}' in log
    row, = read_rows(out, MODEL)
    assert BUDGET[0] <= float(row['eval_path_latency_ms']) <= BUDGET[1]
