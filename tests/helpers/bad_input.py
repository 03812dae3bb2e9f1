"""The user-mistake table tests' shared pieces: the demo commands, a tiny run's settings, and the check that a
refused run printed one ``error:`` line and left nothing behind."""
import glob
import json
import os
import re

from cli import REPO_ROOT, load_main

T = ['train', os.path.join(REPO_ROOT, 'configs', 'demo', 'train.yaml')]
R = ['retrain', os.path.join(REPO_ROOT, 'configs', 'demo', 'retrain.yaml')]
TE = ['test', os.path.join(REPO_ROOT, 'configs', 'demo', 'test.yaml')]
E = ['evolve', os.path.join(REPO_ROOT, 'configs', 'demo', 'evolve.yaml'), 'RESUME_PATH', '{search}']
SMALL = ['EPOCHS', '1', 'DATASET.BATCH_SIZE', '16', 'SUPERNET.FLOPS_MINIMUM', '0', 'SUPERNET.FLOPS_MAXIMUM', '150',
         'WORKERS', '0']
TIMEOUT = 180
PROGRESS = re.compile(r'\| *\d+/\d+ \[')  # a tqdm bar


def table_data(root) -> dict:
    """Under ``root``: the small digits folder, a search checkpoint of it and a retrained network's checkpoint."""
    from Paddle_Cream.data.demo_dataset import ensure_demo_dataset
    digits = str(root / 'digits')
    ensure_demo_dataset('digits', digits, log=lambda _: None, per_class=12)
    out = root / 'runs'
    main = load_main()
    for args in ([*T, *SMALL, 'SUPERNET.META_STA_EPOCH', '0', 'EPOCHS', '2', 'SUPERNET.POOL_SIZE', '3'],
                 [*R, 'EPOCHS', '1', 'DATASET.BATCH_SIZE', '16', 'WORKERS', '0']):
        assert main([*args, 'DATA_DIR', digits, 'SAVE_PATH', str(out)]) == 0
    search = glob.glob(str(out / '*-demo_search' / 'checkpoint-last.pdparams'))[0]
    retrained = glob.glob(str(out / '*-demo_retrain' / 'model_best.pdparams'))[0]
    return {'digits': digits, 'search': search, 'retrained': retrained, 'root': root}


def run_one_line(capsys, argv, values, words, save_path, tmp_path, run_started=False) -> str:
    """``main(argv)``: exit 1, one ``error:`` line holding ``words`` (formatted with ``values``), no run folder
    (unless ``run_started``), no temporary file; returns the line."""
    capsys.readouterr()
    code = load_main()(list(map(str, argv)))
    out, err = capsys.readouterr()
    assert code == 1, (out[-1500:], err[-1500:])
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1 and lines[0].startswith('error:') and 'Traceback' not in err, err[-3000:]
    for w in words:
        assert w.format(**values) in lines[0], lines[0]
    if not run_started:
        assert not glob.glob(os.path.join(glob.escape(str(save_path)), '*')), 'a run folder was made'
    pattern = os.path.join(glob.escape(str(tmp_path)), '**', '.*.tmp')
    assert not glob.glob(pattern, recursive=True), 'a temporary file was left'
    return lines[0]


def arch_file(tmp_path, resolution) -> str:
    """An arch.json of the retrained network of :func:`table_data` (every layer choice 0) at ``resolution``."""
    path = str(tmp_path / 'arch.json')
    with open(path, 'w') as f:
        json.dump({'arch': [[0], [0], [0], [0, 0], [0], [0], [0]], 'resolution': resolution}, f)
    return path
