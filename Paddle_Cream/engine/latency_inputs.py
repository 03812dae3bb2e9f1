"""Latency tables named by config keys (EVOLVE.LATENCY_TABLE, EXPORT.LATENCY_TABLE, ...): read and checked
as one UserError line before a run folder exists, and the record a run's JSON keeps of the table it used."""
import os
from typing import Any, Dict, NamedTuple

import paddle

from pimm.inference import RUNTIME_PACKAGES, RuntimeUnavailableError, require_runtime

from ..search.latency_table import LatencyTableError, PathLatency
from .errors import UserError

__all__ = ['TableFile', 'load_latency_table', 'require_table_fits', 'require_table_runtime', 'gpu_ready']


class TableFile(NamedTuple):
    """A latency table and the file (and config key) it was read from."""
    table: PathLatency
    file: str
    key: str

    def record(self) -> Dict[str, Any]:
        """What a result file keeps of the table its latency came from: the absolute file, the digest of
        its content and the settings it is valid for."""
        return dict(file=os.path.abspath(self.file), digest=self.table.digest(), settings=self.table.settings())


def load_latency_table(file: str, key: str) -> TableFile:
    """The table in ``file``, the value of config ``key``; one UserError line naming ``key`` when it is
    missing, not JSON or not a latency table."""
    try:
        return TableFile(PathLatency.load(file), file, key)
    except LatencyTableError as e:
        raise UserError(f'{key}: {e}') from None


def gpu_ready() -> bool:
    """A CUDA build of Paddle that sees a GPU."""
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def require_table_fits(table_file: TableFile, sta_num, resolution: int, num_classes: int, global_pool: str,
                       note: str = '') -> None:
    """The table was measured for this hypernetwork: one UserError line (key, the first setting that differs,
    ``note``) otherwise."""
    try:
        table_file.table.check_fits(sta_num, resolution, num_classes, global_pool)
    except LatencyTableError as e:
        raise UserError(f'{table_file.key}: {e}{note}') from None


def require_table_runtime(table_file: TableFile) -> None:
    """The runtime (and GPU) the table was measured with can run here: one UserError line otherwise."""
    latency, key = table_file.table, table_file.key
    if latency.runtime not in RUNTIME_PACKAGES or latency.runtime == 'dygraph':
        raise UserError(f"{key}: {latency.source} was measured with runtime '{latency.runtime}', which this code "
                        f"cannot run")
    try:
        require_runtime(latency.runtime, f'{key} (measured with {latency.runtime})')
    except RuntimeUnavailableError as e:
        raise UserError(str(e)) from None
    if latency.gpu and not gpu_ready():
        raise UserError(f'{key}: {latency.source} was measured on a GPU ({latency.device}); this Paddle sees none')

