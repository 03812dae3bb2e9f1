"""The README followed word for word, as a newcomer does: its set-up's commands, then every command of its demo
loop as written, in a fresh folder (the checkout's code and configs, a tiny copy of the digits data), each with
a few KEY VALUE pairs appended that make it small. Every loop command must be one that a step before it printed,
so the README and the tools cannot drift apart. Also: every link of the README and docs/ resolves."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Dict, List, Tuple

import pytest

from cli import REPO_ROOT

README = os.path.join(REPO_ROOT, 'README.md')
# appended to each README command of a mode: the same run, smaller (the demo's FLOPs budget is kept, so the
# commands each step prints are the README's)
TINY = {
    'train': ['EPOCHS', 2, 'DATASET.BATCH_SIZE', 16, 'SUPERNET.META_STA_EPOCH', 0, 'SUPERNET.UPDATE_ITER', 3,
              'SUPERNET.POOL_SIZE', 3, 'WORKERS', 0],
    'retrain': ['EPOCHS', 2, 'DATASET.BATCH_SIZE', 16, 'WORKERS', 0],
    'test': ['WORKERS', 0],
    'export': [],
    'predict': ['WORKERS', 0],
    'evolve': ['EVOLVE.POPULATION', 4, 'EVOLVE.TOP_K', 2, 'EVOLVE.MUTATION_NUM', 2, 'EVOLVE.CROSSOVER_NUM', 2,
               'EVOLVE.GENERATIONS', 2, 'EVOLVE.BN_BATCHES', 2, 'EVOLVE.EVAL_BATCHES', 2, 'WORKERS', 0],
    'rank': ['RANK.NUM_PATHS', 3, 'RANK.RETRAIN_EPOCHS', 1, 'EVOLVE.BN_BATCHES', 2, 'EVOLVE.EVAL_BATCHES', 2,
             'WORKERS', 0],
}
# the loop's commands no earlier step prints: the SPOS search (a choice of method) and rank (a study of a supernet)
NOT_PRINTED = {'train', 'rank'}
PRINTED = re.compile(r'(python tools/main\.py \S.*)$', re.M)


def code_block(text: str, after: str) -> List[str]:
    """The logical lines (comments and blank lines dropped) of the first ``` block after ``after``."""
    start = text.index(after)
    block = re.search(r'```[a-z]*\n(.*?)```', text[start:], re.S).group(1)
    lines = [line.strip() for line in block.replace('\\\n', ' ').splitlines()]
    return [line for line in lines if line and not line.startswith('#')]


def shell(line: str, cwd: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', '-c', line], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def check_installed(line: str, cwd: str) -> None:
    """``pip install -r FILE``: the file is in the checkout and every package it pins is installed at that
    version (CI installs them; the test does not change the environment)."""
    words = line.split()
    assert words[:3] == ['pip', 'install', '-r'] and len(words) == 4, line
    with open(os.path.join(cwd, words[3])) as f:
        pins = [r.split('#')[0].strip() for r in f if r.split('#')[0].strip()]
    for pin in pins:
        if pin.startswith('-r '):
            check_installed(f'pip install {pin}', cwd)
            continue
        name, version = pin.split('==')
        assert metadata.version(name) == version, (line, pin)


def workspace(tmp_path, digits) -> str:
    """A fresh folder laid out as a clone: the checkout's code, configs and requirement files, the digits copy
    where the demo configs look for it; nothing in ./output yet."""
    root = tmp_path / 'clone'
    root.mkdir()
    for name in ('tools', 'configs', 'Paddle_Cream', 'pimm', 'torch2paddle'):
        os.symlink(os.path.join(REPO_ROOT, name), root / name)
    for name in glob.glob(os.path.join(REPO_ROOT, 'requirements*.txt')):
        shutil.copy(name, root)
    shutil.copytree(digits, root / 'data' / 'digits')
    return str(root)


def run_readme(cwd: str) -> List[Tuple[str, subprocess.CompletedProcess]]:
    """Run the set-up's commands, then the demo loop's, in ``cwd``; returns (the command as the README's words
    expand, its process) for every mode run, in order. Fails at the first command that fails, or at a loop
    command no earlier step printed."""
    with open(README) as f:
        text = f.read()
    env = {**os.environ, 'PYTHONPATH': ''}
    lines = code_block(text, '## Set-up') + code_block(text, '<!-- demo-loop -->')
    printed: List[str] = []
    runs = []
    for line in lines:
        if line.startswith('pip install'):
            check_installed(line, cwd)
            continue
        assignment = re.fullmatch(r'([A-Z_]+)=(.*)', line)
        if assignment:
            value = shell(f'printf %s {assignment.group(2)}', cwd, env)
            assert value.returncode == 0 and value.stdout, (line, value.stderr)
            env[assignment.group(1)] = value.stdout
            continue
        command = shell(f'echo {line}', cwd, env).stdout.strip()   # the words as bash expands them
        words = command.split()
        assert words[:2] == ['python', 'tools/main.py'], line
        mode = words[2]
        if runs and mode not in NOT_PRINTED:
            assert command in printed, f'the README command\n  {command}\nis not one a step printed:\n  ' + \
                '\n  '.join(printed)
        proc = shell(' '.join([line.replace('python ', f'{sys.executable} ', 1), *map(str, TINY[mode])]), cwd, env)
        assert proc.returncode == 0, (line, proc.stdout[-3000:], proc.stderr[-3000:])
        printed += [found.strip() for found in PRINTED.findall(proc.stdout)]
        runs.append((command, proc))
    return runs


def one(pattern: str) -> str:
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


def read_json(pattern: str):
    with open(one(pattern)) as f:
        return json.load(f)


def test_the_readme_set_up_and_demo_loop_run_as_written(digits, tmp_path):
    cwd = workspace(tmp_path, digits)
    runs = run_readme(cwd)
    assert [command.split()[2] for command, _ in runs] == [
        'train', 'retrain', 'test', 'export', 'predict', 'train', 'evolve', 'rank']
    out = os.path.join(cwd, 'output')
    best = read_json(f'{out}/*-demo_search/best_arch.json')
    results = read_json(f'{out}/*-demo_test/results.json')
    assert results['arch'] == best['arch'] and results['images'] == 20
    exported = read_json(f'{out}/*-demo_export/export.json')
    assert exported['preprocessing']['input_size'] == 32 and exported['arch'] == best['arch']
    assert exported['class_names'] == [f'digit_{i}' for i in range(10)]
    assert set(exported['parity']['report']['openvino']) == {'random batch', 'real images'}
    predictions = read_json(f'{out}/*-demo_predict/predictions.json')
    hits = [p['topk'][0]['label'] == os.path.basename(os.path.dirname(p['path'])) for p in predictions]
    assert len(hits) == 20 and 100.0 * sum(hits) / len(hits) == results['top1']   # test's pipeline, test's score
    accuracy = read_json(f'{out}/*-demo_predict/predict.json')['accuracy']   # the labelled folder is scored
    assert accuracy['images'] == 20 and accuracy['top1'] == results['top1'] and accuracy['top5'] == results['top5']
    evolved = read_json(f'{out}/*-demo_spos_evolve/best_arch.json')
    assert 100 <= evolved['flops'] <= 200 and evolved['method'] == 'spos'
    rank = read_json(f'{out}/*-demo_rank/rank.json')
    assert rank['checkpoint'] == os.path.abspath(one(f'{out}/*-demo_spos/checkpoint-last.pdparams'))
    assert 'kendall_tau' in rank and 'spearman_rho' in rank
    # the retrained checkpoint tested without its architecture: the one error line says how to build it
    best_ckpt = one(f'{out}/*-demo_retrain/model_best.pdparams')
    refused = shell(f'{sys.executable} tools/main.py test configs/demo/test.yaml RESUME_PATH {best_ckpt} '
                    'MODEL demo_test2 WORKERS 0', cwd, dict(os.environ))
    assert refused.returncode == 1 and 'NET.SELECTION -1 NET.ARCH_FILE' in refused.stderr, refused.stderr
    assert 'arch.json' in refused.stderr and 'Traceback' not in refused.stderr
    # a step run a second time is refused with one line, its folder untouched
    command, _ = runs[0]
    again = shell(' '.join([command.replace('python ', f'{sys.executable} ', 1), *map(str, TINY['train'])]),
                  cwd, dict(os.environ))
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert again.returncode == 1 and len(lines) == 1 and 'already holds a search run' in lines[0], again.stderr


LINK = re.compile(r'\]\(([^)\s]+)\)')


def headings_anchors(path: str) -> set:
    """GitHub's anchors of a Markdown file's headings (outside code blocks)."""
    anchors, fence = set(), False
    with open(path) as f:
        for line in f:
            if line.startswith('```'):
                fence = not fence
            elif not fence and line.startswith('#'):
                title = line.lstrip('#').strip().lower()
                anchors.add(re.sub(r'[^\w\- ]', '', title).replace(' ', '-'))
    return anchors


@pytest.mark.parametrize('page', ['README.md', *sorted(os.path.relpath(p, REPO_ROOT)
                                                      for p in glob.glob(os.path.join(REPO_ROOT, 'docs', '*.md')))])
def test_every_link_of_the_docs_resolves(page):
    """Every relative link names a file of the repository, and every #anchor a heading of its page."""
    path = os.path.join(REPO_ROOT, page)
    with open(path) as f:
        text = f.read()
    assert 'SPEC' not in text, 'SPEC is not in the repository: docs/reference.md holds its facts'
    for target in LINK.findall(text):
        if target.startswith(('http://', 'https://')):
            continue
        file, _, anchor = target.partition('#')
        linked = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        assert os.path.exists(linked), (page, target)
        if anchor:
            assert anchor in headings_anchors(linked), (page, target)
