"""The layers of the tree import downwards only: pimm knows nothing of Paddle_Cream, and the algorithm
(Paddle_Cream/search, models) does not reach into the engine that runs it."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _imports(path):
    tree = ast.parse(open(path).read(), path)
    package = os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, '.')
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                yield '.'.join(base + ([node.module] if node.module else []))
            else:
                yield node.module


def _files(folder):
    for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
        yield from (os.path.join(dirpath, n) for n in names if n.endswith('.py'))


@pytest.mark.parametrize('folder, forbidden', [
    ('pimm', 'Paddle_Cream'),
    ('Paddle_Cream/search', 'Paddle_Cream.engine'),
    ('Paddle_Cream/models', 'Paddle_Cream.engine'),
])
def test_no_upward_imports(folder, forbidden):
    bad = [(os.path.relpath(f, ROOT), name) for f in _files(folder) for name in _imports(f)
           if name and (name == forbidden or name.startswith(forbidden + '.'))]
    assert not bad, bad
