"""Per-epoch summary CSV, as timm's training script writes it."""
import csv
import os
from collections import OrderedDict
from typing import Any, Mapping, Optional

__all__ = ['update_summary']


def _scalar(value: Any) -> Any:
    """0-d tensors and numpy scalars as Python numbers."""
    return value.item() if hasattr(value, 'item') and getattr(value, 'size', 1) == 1 else value


def update_summary(epoch: int, train_metrics: Mapping[str, Any], eval_metrics: Optional[Mapping[str, Any]],
                   filename: str, write_header: bool = False, lr: Optional[float] = None) -> None:
    """Append a row ``epoch, train_<k>..., eval_<k>...[, lr]`` to the CSV ``filename``, after a header
    row when ``write_header``."""
    row = OrderedDict(epoch=epoch)
    row.update(('train_' + k, _scalar(v)) for k, v in train_metrics.items())
    if eval_metrics:
        row.update(('eval_' + k, _scalar(v)) for k, v in eval_metrics.items())
    if lr is not None:
        row['lr'] = lr
    directory = os.path.dirname(os.path.abspath(filename))
    os.makedirs(directory, exist_ok=True)
    with open(filename, mode='a', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(row.keys()))
        if write_header:
            writer.writeheader()
        writer.writerow(row)
