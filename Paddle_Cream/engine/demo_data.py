"""``DATASET.DEMO``: every mode writes the demo dataset to DATA_DIR on first use, in one place."""
from typing import Optional

from pimm.data import DatasetError
from pimm.utils.distributed import is_main_process

__all__ = ['prepare_demo_data']


def prepare_demo_data(cfg, world: int = 1) -> None:
    """Write ``cfg.DATASET.DEMO`` to ``cfg.DATA_DIR`` unless it is there (rank 0 writes, the others wait).

    A DATA_DIR that is neither empty nor a complete demo dataset, or a failed write, raises
    :class:`~pimm.data.DatasetError` (one line) on every rank.
    """
    if not cfg.DATASET.DEMO:
        return
    from ..data.demo_dataset import demo_dataset_problem, ensure_demo_dataset
    writer = world == 1 or is_main_process()
    failure: Optional[BaseException] = None
    if writer:
        try:
            ensure_demo_dataset(cfg.DATASET.DEMO, cfg.DATA_DIR)
        except Exception as e:  # raised after the barrier: the other ranks must not wait there for ever
            failure = e
    if world > 1:
        import paddle.distributed as dist
        dist.barrier()
    if failure is not None:
        raise failure
    if not writer:
        problem = demo_dataset_problem(cfg.DATASET.DEMO, cfg.DATA_DIR)
        if problem is not None:
            raise DatasetError(f'{cfg.DATA_DIR}: rank 0 did not write the demo dataset ({problem})')
