"""pimm.utils: checkpoints on disk, model complexity, training helpers."""
from .checkpoint_io import CheckpointFileError, load_paddle_file, save_paddle_file
from .model_complexity import MacCounter, count_params, format_complexity, model_complexity
from .safe_pickle import RestrictedUnpickler, UnknownObject, UnsafePickleError, restricted_loads
from .checkpoint_saver import CheckpointSaver
from .metrics import AverageMeter, accuracy, reduce_tensor
from .fused_storage import FusedUnits
from .model_ema import ModelEma, unwrap_model
from .summary import update_summary
