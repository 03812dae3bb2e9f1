"""``summary.csv``: one row per epoch, read back as numbers and rewritten atomically."""
import csv
import os
from typing import Dict, List, Union

from pimm.utils.atomic import atomic_path

__all__ = ['read_summary', 'write_summary']

Row = Dict[str, Union[int, float, str]]


def _number(text: str) -> Union[int, float, str]:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_summary(path: str) -> List[Row]:
    """The rows of ``path`` with numbers as numbers (no file: no rows)."""
    if not os.path.isfile(path):
        return []
    with open(path, newline='') as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_summary(rows: List[Row], path: str) -> None:
    """Write ``rows`` (header from the first) to a temporary file, then rename; no rows: no file."""
    if not rows:
        if os.path.exists(path):
            os.remove(path)
        return
    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
