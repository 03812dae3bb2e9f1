#!/usr/bin/env python
"""Build subImageNet (docs/reference.md §8) as train/ and val/ folders of symlinks or copies.

usage: python tools/generate_subImageNet.py --source IMAGENET_TRAIN_DIR
  --dest OUT_DIR [--from-lists | --from-folder] [--copy] [--dry-run] [--force]
  [--train-per-class 250] [--val-per-class 50] [--num-classes 100]

Official lists (Paddle_Cream/data, verbatim from Cream), parsed with
ast.literal_eval (never eval) and checked before use:
  * subclass_list.txt: 100 wnids, one per line (n01440764 ... n01855672),
    the first 100 ImageNet train class folders in sorted order.
  * subimages_list.txt: one Python list literal per line, one line per class
    in subclass_list order; every line holds exactly 350 '<wnid>_<id>.JPEG'
    names, sorted (Python string order), no duplicates. Cream wrote them as
    sorted(os.listdir(class_dir))[:350]: the first 350 images in sorted order.

Split: the official text describes 250 training and 50 validation images per
class, so each class's kept images (sorted) give the first --train-per-class
to train/ and the next --val-per-class to val/; with the defaults the last 50
of the 350 listed images are ignored (linked nowhere).
--from-folder instead takes the first --num-classes class folders of SOURCE
and the first images (non-hidden regular files) of each, all sorted.

Output: OUT_DIR/{train,val}/<wnid>/<file>, absolute symlinks (copies with
--copy). Idempotent: a link resolving to its source, or a copy with the
source's size and mtime, is left alone; anything else in the way is an error
unless --force replaces it (folders in the way never are); unrelated files in
OUT_DIR are not touched. Everything is validated before anything is created;
bad input gives one line on stderr and exit code 1.
"""
import argparse
import ast
import os
import shutil
import sys
from typing import List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LISTS_DIR = os.path.join(ROOT, 'Paddle_Cream', 'data')
CLASS_FILE, IMAGES_FILE = 'subclass_list.txt', 'subimages_list.txt'
SPLITS = ('train', 'val')
SHOW = 3  # how many offending names an error message quotes

Selection = List[Tuple[str, List[str]]]   # (wnid, sorted kept file names)
Action = Tuple[str, str, str]             # (source file, dest path, status)


class SubsetError(Exception):
    """Bad input: reported as one line on stderr, exit code 1."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--source', required=True, help='ImageNet train folder')
    p.add_argument('--dest', required=True, help='output folder')
    mode = p.add_mutually_exclusive_group()
    mode.add_argument('--from-lists', dest='from_folder', action='store_false',
                      help='use the official lists (default)')
    mode.add_argument('--from-folder', dest='from_folder', action='store_true',
                      help='take the first classes/images of SOURCE')
    p.set_defaults(from_folder=False)
    p.add_argument('--copy', action='store_true', help='copy, do not link')
    p.add_argument('--dry-run', action='store_true', help='change nothing')
    p.add_argument('--force', action='store_true',
                   help='replace files or links that are in the way')
    p.add_argument('--train-per-class', type=int, default=250,
                   help='images per class in train/ (default 250)')
    p.add_argument('--val-per-class', type=int, default=50,
                   help='next images per class in val/ (default 50)')
    p.add_argument('--num-classes', type=int, default=100,
                   help='first N classes (default 100)')
    p.add_argument('--lists-dir', default=LISTS_DIR, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.train_per_class < 1 or args.val_per_class < 0:
        raise SubsetError('--train-per-class must be >= 1 and '
                          '--val-per-class >= 0')
    if args.num_classes < 1:
        raise SubsetError('--num-classes must be >= 1')
    return args


def _lines(path: str) -> List[str]:
    """Lines of a list file, trailing blank lines dropped, no inner blanks."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SubsetError(f'cannot read list file {path}: {e}') from None
    while lines and not lines[-1].strip():
        lines.pop()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise SubsetError(f'{path} line {i}: blank line')
    return lines


def _parse_names(path: str, lineno: int, line: str, wnid: str) -> List[str]:
    """One subimages_list line: a list literal of '<wnid>_*' file names."""
    where = f'{path} line {lineno} ({wnid})'
    try:
        names = ast.literal_eval(line.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise SubsetError(f'{where}: not a Python list literal') from None
    if not isinstance(names, list) or not all(
            isinstance(n, str) for n in names):
        raise SubsetError(f'{where}: not a list of file name strings')
    for n in names:
        if os.path.basename(n) != n or not n.startswith(wnid + '_'):
            raise SubsetError(f'{where}: {n!r} is not a file name of class '
                              f'{wnid}')
    if len(set(names)) != len(names):
        raise SubsetError(f'{where}: duplicate file names')
    return sorted(names)


def read_lists(lists_dir: str) -> Selection:
    """Parse and check subclass_list.txt + subimages_list.txt."""
    cls_path = os.path.join(lists_dir, CLASS_FILE)
    img_path = os.path.join(lists_dir, IMAGES_FILE)
    wnids = [w.strip() for w in _lines(cls_path)]
    for w in wnids:
        if os.path.basename(w) != w or w in ('.', '..') or ' ' in w:
            raise SubsetError(f'{cls_path}: {w!r} is not a class folder name')
    if len(set(wnids)) != len(wnids):
        raise SubsetError(f'{cls_path}: duplicate class names')
    lines = _lines(img_path)
    if len(lines) != len(wnids):
        raise SubsetError(f'{img_path} has {len(lines)} lines but {cls_path} '
                          f'lists {len(wnids)} classes')
    return [(w, _parse_names(img_path, i, line, w))
            for i, (w, line) in enumerate(zip(wnids, lines), 1)]


def _files(folder: str) -> List[str]:
    """Sorted names of the non-hidden regular files in a folder."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it
                      if e.is_file() and not e.name.startswith('.'))


def from_folder(source: str, num_classes: int, need: int) -> Selection:
    """First num_classes class folders, first `need` files of each."""
    with os.scandir(source) as it:
        classes = sorted(e.name for e in it
                         if e.is_dir() and not e.name.startswith('.'))
    if len(classes) < num_classes:
        raise SubsetError(f'{source} has {len(classes)} class folders, '
                          f'--num-classes asks for {num_classes}')
    selection = [(c, _files(os.path.join(source, c))[:need])
                 for c in classes[:num_classes]]
    short = [c for c, names in selection if len(names) < need]
    if short:
        raise SubsetError(f'{len(short)} class folders hold fewer than {need} '
                          f'images, first: {", ".join(short[:SHOW])}')
    return selection


def from_lists(source: str, lists_dir: str, num_classes: int,
               need: int) -> Selection:
    """The first num_classes official classes; check SOURCE holds them."""
    selection = read_lists(lists_dir)
    if num_classes > len(selection):
        raise SubsetError(f'the lists hold {len(selection)} classes, '
                          f'--num-classes asks for {num_classes}')
    selection = selection[:num_classes]
    short = [w for w, names in selection if len(names) < need]
    if short:
        raise SubsetError(f'{len(short)} classes list fewer than {need} '
                          f'images (train + val), first: {short[0]}')
    selection = [(w, names[:need]) for w, names in selection]
    no_dir = [w for w, _ in selection
              if not os.path.isdir(os.path.join(source, w))]
    if no_dir:
        raise SubsetError(f'{len(no_dir)} class folders missing in {source}, '
                          f'first: {", ".join(no_dir[:SHOW])}')
    missing = []
    for w, names in selection:
        present = set(_files(os.path.join(source, w)))
        missing += [f'{w}/{n}' for n in names if n not in present]
    if missing:
        raise SubsetError(f'{len(missing)} listed images missing in {source}, '
                          f'first: {", ".join(missing[:SHOW])}')
    return selection


def _inside(path: str, folder: str) -> bool:
    """True when path is folder or lies below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_paths(source: str, dest: str) -> None:
    """SOURCE must exist; DEST must not overlap it."""
    if not os.path.isdir(source):
        raise SubsetError(f'source folder not found: {source}')
    src, dst = os.path.realpath(source), os.path.realpath(dest)
    if _inside(dst, src):
        raise SubsetError(f'--dest {dest} lies inside --source {source}')
    for split in SPLITS:
        if _inside(src, os.path.join(dst, split)):
            raise SubsetError(f'--source {source} lies inside --dest '
                              f'{dest}/{split}')


def _status(src: str, dst: str, copy: bool) -> str:
    """'create', 'present', or why the existing dst conflicts."""
    if not os.path.lexists(dst):
        return 'create'
    if os.path.isdir(dst) and not os.path.islink(dst):
        return 'dir'
    if os.path.islink(dst):
        ok = not copy and (os.readlink(dst) == src or (
            os.path.exists(dst) and os.path.samefile(dst, src)))
        return 'present' if ok else 'a link to ' + os.readlink(dst)
    a, b = os.stat(src), os.stat(dst)
    if copy and a.st_size == b.st_size and abs(a.st_mtime - b.st_mtime) < 1:
        return 'present'
    return 'a file that differs from the source' if copy else 'a file'


def plan(source: str, dest: str, selection: Selection, n_train: int,
         copy: bool, force: bool) -> List[Action]:
    """Every (source, dest, status); raises on conflicts unless force."""
    src_root = os.path.abspath(source)
    for d in [dest] + [os.path.join(dest, s) for s in SPLITS] + [
            os.path.join(dest, s, w) for s in SPLITS for w, _ in selection]:
        if os.path.lexists(d) and not os.path.isdir(d):
            raise SubsetError(f'{d} is in the way: not a folder')
    actions, conflicts = [], []
    for wnid, names in selection:
        for i, name in enumerate(names):
            src = os.path.join(src_root, wnid, name)
            split = 'train' if i < n_train else 'val'
            dst = os.path.join(dest, split, wnid, name)
            status = _status(src, dst, copy)
            if status == 'dir':
                raise SubsetError(f'{dst} is in the way: a folder')
            if status not in ('create', 'present'):
                conflicts.append(f'{dst} ({status})')
                status = 'replace'
            actions.append((src, dst, status))
    if conflicts and not force:
        raise SubsetError(f'{len(conflicts)} paths in {dest} are in the way, '
                          f'first: {conflicts[0]}; use --force to replace')
    return actions


def apply(actions: List[Action], copy: bool) -> None:
    """Create the links/copies (via a temporary name, then os.replace)."""
    from tqdm import tqdm
    todo = [a for a in actions if a[2] != 'present']
    for src, dst, _ in tqdm(todo, desc='copying' if copy else 'linking',
                            unit='file', disable=len(todo) < 1000):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = dst + '.subimagenet-tmp'
        if os.path.lexists(tmp):
            os.remove(tmp)
        if copy:
            shutil.copy2(src, tmp)
        else:
            os.symlink(src, tmp)
        os.replace(tmp, dst)


def summary(actions: List[Action], args: argparse.Namespace,
            n_classes: int) -> str:
    """One line of counts: created / already present / replaced."""
    count = {s: sum(a[2] == s for a in actions)
             for s in ('create', 'present', 'replace')}
    kind = 'copies' if args.copy else 'symlinks'
    return (f'{count["create"]} created, {count["present"]} already present, '
            f'{count["replace"]} replaced ({kind} in {args.dest}: {n_classes} '
            f'classes x {args.train_per_class} train + {args.val_per_class} '
            f'val)')


def run(argv: Sequence[str]) -> int:
    """Validate everything, then create (or, with --dry-run, describe)."""
    args = parse_args(argv)
    need = args.train_per_class + args.val_per_class
    check_paths(args.source, args.dest)
    if args.from_folder:
        selection = from_folder(args.source, args.num_classes, need)
    else:
        selection = from_lists(args.source, args.lists_dir, args.num_classes,
                               need)
    actions = plan(args.source, args.dest, selection, args.train_per_class,
                   args.copy, args.force)
    if args.dry_run:
        print('dry run, nothing changed; would make: ' +
              summary(actions, args, len(selection)))
        todo = [a for a in actions if a[2] != 'present']
        verb = 'copy' if args.copy else 'link'
        for src, dst, status in todo[:5]:
            print(f'  {status} {verb} {dst} <- {src}')
        if len(todo) > 5:
            print(f'  ... and {len(todo) - 5} more')
        return 0
    apply(actions, args.copy)
    print(summary(actions, args, len(selection)))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry: 0 on success, 1 with one stderr line on bad input."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except SubsetError as e:
        print(f'error: {e}', file=sys.stderr)
    except OSError as e:
        print(f'error: {e}', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
