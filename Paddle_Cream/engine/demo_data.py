"""``DATASET.DEMO``: every mode writes the demo dataset to DATA_DIR on first use, in one place."""
from pimm.utils.distributed import is_main_process

__all__ = ['prepare_demo_data']


def prepare_demo_data(cfg, world: int = 1) -> None:
    """Write ``cfg.DATASET.DEMO`` to ``cfg.DATA_DIR`` unless it is there (rank 0 writes, the others wait)."""
    if not cfg.DATASET.DEMO:
        return
    from ..data.demo_dataset import ensure_demo_dataset
    if world == 1 or is_main_process():
        ensure_demo_dataset(cfg.DATASET.DEMO, cfg.DATA_DIR)
    if world > 1:
        import paddle.distributed as dist
        dist.barrier()
