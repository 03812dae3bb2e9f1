"""What ``train`` sets up before its loop: input checks, loaders, optimizer/scheduler/EMA, resume."""
import os
from typing import Dict, List, Optional, Tuple

from pimm.data import DatasetError, ImageDataset, create_loader
from pimm.utils.amp import GradScaler
from pimm.utils.atomic import remove_stale_temp_files
from pimm.utils.distributed import broadcast_object, is_main_process

from ..models.hypernet import HyperNet
from ..search.behaviour import SWITCHES, SearchBehaviour, resolve_behaviour
from ..search.official_lr import SquaredLinearLRScheduler
from .demo_data import prepare_demo_data
from .distributed import gpu_count
from .errors import UserError, require_file
from .output import refuse_existing_run
from .resume_checks import (check_board_state, check_counter, check_meta_state, check_optimizer_state,
                            check_scaler_state)
from .resume_config import config_changes, saved_config
from .search_budget import SearchSpace, budget_space
from .train_state import CHECKPOINT_NAME, check_compatible, find_resume_checkpoint, load_train_state

__all__ = ['check_train_inputs', 'check_data_folders', 'train_loaders', 'build_optimization', 'read_resume_state',
           'apply_resume_state', 'resume_if_asked', 'search_behaviour', 'build_meta_optimizer']

def check_training_keys(cfg) -> None:
    """Keys of the official configs that search and retrain share but this port cannot honour as given."""
    bn = cfg.BATCHNORM
    if bn.SYNC_BN and cfg.NUM_GPU > 1 and gpu_count() == 0:
        raise UserError('BATCHNORM.SYNC_BN needs GPUs (paddle.nn.SyncBatchNorm) and this Paddle sees none: '
                        'set it False for CPU processes')
    if cfg.AMP and gpu_count() == 0:
        raise UserError('AMP needs a GPU (paddle.amp float16 auto_cast with a GradScaler) and this Paddle '
                        'sees none: set AMP False to train in float32 on CPU')
    if bn.BN_TF or bn.BN_MOMENTUM != 0.1 or bn.BN_EPS != 1e-5:
        raise UserError('BATCHNORM.BN_TF, BN_MOMENTUM and BN_EPS are not used (nor by the official code): the '
                        'networks keep PyTorch\'s BatchNorm momentum 0.1 and eps 1e-5; remove them')
    if cfg.RECOVERY_INTERVAL:
        raise UserError(f'RECOVERY_INTERVAL {cfg.RECOVERY_INTERVAL}: mid-epoch recovery files are not supported; '
                        'every epoch ends with an atomic checkpoint that AUTO_RESUME continues from')


def check_train_inputs(cfg) -> SearchSpace:
    """Everything a user can get wrong, checked before any process or file is started; returns the
    search space the budgets give (:func:`~Paddle_Cream.engine.search_budget.budget_space`: its layers,
    resolution, FLOPs table, latency table and budgets)."""
    check_training_keys(cfg)   # single values (choices, ranges) were checked when the config was loaded
    s = cfg.SUPERNET
    for key in ('RESUNIT', 'DIL_CONV'):
        if getattr(s, key):
            raise UserError(f'SUPERNET.{key} True: only the paper\'s search space is implemented; set it False')
    if not s.UPDATE_2ND:
        raise UserError('SUPERNET.UPDATE_2ND False: the meta-matching update is always second order; set it True')
    try:
        behaviour = search_behaviour(cfg)
    except ValueError as e:
        raise UserError(str(e)) from None
    if cfg.AMP and behaviour.m_gradient == 'trained':
        raise UserError('SUPERNET.M_GRADIENT trained (FOLLOW official) with AMP True: one loss scaler cannot skip '
                        'the meta layer\'s step with the supernet\'s yet; set AMP False or SUPERNET.M_GRADIENT none')
    space = budget_space(cfg)
    if cfg.DATASET.BATCH_SIZE < 2 * s.SLICE:
        raise UserError(f'DATASET.BATCH_SIZE {cfg.DATASET.BATCH_SIZE} must hold two slices of SUPERNET.SLICE '
                        f'{s.SLICE} (meta-matching trains on one and validates on the next)')
    check_data_folders(cfg)
    if cfg.RESUME_PATH:
        require_file(cfg.RESUME_PATH, 'RESUME_PATH')
    if not (cfg.RESUME_PATH or cfg.AUTO_RESUME):
        refuse_existing_run(cfg.SAVE_PATH, cfg.MODEL, 'search', CHECKPOINT_NAME, resumable=True)
    return space


def check_data_folders(cfg) -> None:
    """DATA_DIR/train and DATA_DIR/val must exist (a DATASET.DEMO set writes them on first use)."""
    if cfg.DATASET.DEMO:
        return
    for split in (cfg.DATASET.TRAIN_SPLIT, cfg.DATASET.VAL_SPLIT):
        folder = os.path.join(cfg.DATA_DIR, split)
        if not os.path.isdir(folder):
            raise UserError(f"'{folder}' not found (DATA_DIR/{split}); point DATA_DIR at an ImageNet-style "
                            f"folder with train/ and val/")


def train_loaders(cfg, image_size: int, world: int):
    """Training loader (RandAugment, random erasing, ... from AUGMENTATION.*) and validation loader."""
    prepare_demo_data(cfg, world)
    aug = cfg.AUGMENTATION
    try:
        train_set = ImageDataset(os.path.join(cfg.DATA_DIR, cfg.DATASET.TRAIN_SPLIT))
        val_set = ImageDataset(os.path.join(cfg.DATA_DIR, cfg.DATASET.VAL_SPLIT), class_to_idx=train_set.class_to_idx)
    except DatasetError as e:
        raise UserError(str(e)) from None
    if len(train_set.classes) > cfg.DATASET.NUM_CLASSES:
        raise UserError(f'{train_set.root} has {len(train_set.classes)} classes but DATASET.NUM_CLASSES is '
                        f'{cfg.DATASET.NUM_CLASSES}')
    train = create_loader(train_set, image_size, cfg.DATASET.BATCH_SIZE, is_training=True,
                          num_workers=cfg.WORKERS, distributed=world > 1, interpolation=aug.TRAIN_INTERPOLATION,
                          auto_augment=aug.AA or None, color_jitter=aug.COLOR_JITTER, re_prob=aug.RE_PROB,
                          re_mode=aug.RE_MODE, re_count=aug.RE_COUNT, scale=aug.SCALE, hflip=aug.HFLIP,
                          seed=cfg.SEED, pin_memory=cfg.DATASET.PIN_MEM)
    val = create_loader(val_set, image_size, cfg.DATASET.BATCH_SIZE * cfg.DATASET.VAL_BATCH_MUL,
                        is_training=False, num_workers=cfg.WORKERS, distributed=world > 1,
                        crop_pct=cfg.DATASET.CROP_PCT, interpolation=cfg.DATASET.INTERPOLATION,
                        pin_memory=cfg.DATASET.PIN_MEM)
    if len(train) == 0:
        raise UserError(f'{train_set.root}: {len(train_set)} images make no full batch of '
                        f'{cfg.DATASET.BATCH_SIZE} per process')
    return train, val


# the optimizers FusedSGD implements (the search's official choice is sgd: Nesterov momentum)
_FUSED_OPTIMIZERS = ('sgd', 'nesterov', 'momentum')


def search_behaviour(cfg) -> SearchBehaviour:
    """The algorithm SUPERNET.FOLLOW and its switch keys choose (Paddle_Cream.search.behaviour)."""
    s = cfg.SUPERNET
    return resolve_behaviour(s.FOLLOW, {key: getattr(s, key) for key in SWITCHES})


def build_meta_optimizer(cfg, matcher):
    """SUPERNET.META_OPTIMIZER main (the official code): the meta layer's own Nesterov SGD group at META_LR,
    no weight decay, scheduled and stepped with the supernet's optimizer; None otherwise."""
    from pimm.optim import create_optimizer
    if matcher is None or search_behaviour(cfg).meta_optimizer != 'main':
        return None
    return create_optimizer(matcher, opt='sgd', lr=cfg.META_LR, weight_decay=0., momentum=cfg.MOMENTUM,
                            filter_bias_and_bn=False)


def build_optimization(cfg, hypernet: HyperNet, updates_per_epoch: int, meta_optimizer=None):
    """SGD nesterov (no decay on biases/BN) on fused per-unit storage, LR decaying linearly to 0 per step,
    EMA (lazy per unit; on the CPU with NET.EMA.FORCE_CPU) and, with AMP, a GradScaler (docs/reference.md §5).
    ``meta_optimizer`` (:func:`build_meta_optimizer`) is scheduled with the supernet's."""
    from pimm.optim import create_optimizer
    from pimm.scheduler import LinearLRScheduler
    from pimm.utils.model_ema import ModelEma
    fused = hypernet.units() if cfg.OPT.lower() in _FUSED_OPTIMIZERS else None
    optimizer = create_optimizer(hypernet, opt=cfg.OPT, lr=cfg.LR, weight_decay=cfg.WEIGHT_DECAY,
                                 momentum=cfg.MOMENTUM, filter_bias_and_bn=True, fused_units=fused)
    total = cfg.EPOCHS * updates_per_epoch
    scheduled = optimizer if meta_optimizer is None else [optimizer, meta_optimizer]
    if search_behaviour(cfg).lr_rule == 'squared':   # the official code's rule (SUPERNET.LR_RULE)
        scheduler = SquaredLinearLRScheduler(scheduled, t_initial=total, lr=cfg.LR, t_in_epochs=False)
    else:
        scheduler = LinearLRScheduler(scheduled, t_initial=total, t_in_epochs=False)
    ema = None
    if cfg.NET.EMA.USE:
        ema = ModelEma(hypernet, decay=cfg.NET.EMA.DECAY, device='cpu' if cfg.NET.EMA.FORCE_CPU else None,
                       fused=getattr(optimizer, 'fused', None))
    scaler = GradScaler(init_loss_scaling=1024) if cfg.AMP else None
    return optimizer, scheduler, ema, scaler


def read_resume_state(cfg, identity: Dict, hypernet: Optional[HyperNet] = None) -> Optional[Dict]:
    """The checkpoint to continue from (RESUME_PATH or, with AUTO_RESUME, the newest run), on every rank.

    Rank 0 alone decides, reads and checks it (with ``hypernet``, every weight's key and shape too) and
    sends its contents to the other ranks (nodes need not share a folder); a refusal reaches every rank
    too, so none waits for the others. Temporary files a killed save left beside the checkpoint are
    removed."""
    state = None
    if is_main_process():
        try:
            path = cfg.RESUME_PATH or (find_resume_checkpoint(cfg.SAVE_PATH, cfg.MODEL) if cfg.AUTO_RESUME else None)
            if path:
                state = load_train_state(path)
                check_compatible(state['search'], identity, path)
                if hypernet is not None:
                    check_weights(hypernet, state['state_dict'], path)
                state['config_changes'] = config_changes(saved_config(state.get('config')), cfg, 'train', path)
                state['path'] = path
                remove_stale_temp_files(os.path.dirname(os.path.abspath(path)))
        except UserError as e:
            state = {'refused': str(e)}
    state = broadcast_object(state)
    if state is not None and 'refused' in state:
        raise UserError(state['refused'])
    return state


def _check_whole(state: Dict, optimizer, board, matcher, scaler, meta_optimizer=None) -> None:
    """Every entry of ``state`` fits what will load it (one UserError line each), before anything is loaded."""
    path, search = state['path'], state['search']
    check_counter(state['epoch'], 'epoch', path)
    if not isinstance(state.get('rows', []), list):
        raise UserError(f"{path}: its 'rows' are not a list of summary rows: the file is damaged")
    check_optimizer_state(optimizer, state['optimizer'], path)
    check_scaler_state(scaler, state.get('amp_scaler'), path)
    if board is not None and 'board' in state:
        check_board_state(state['board'], search['sta_num'], matcher.slice_size, search['num_classes'],
                          search['image_size'], board.pool_size, path)
        check_meta_state(matcher, state.get('meta_layer'), path)
    if meta_optimizer is not None and 'meta_optimizer' in state:
        check_optimizer_state(meta_optimizer, state['meta_optimizer'], path)


def apply_resume_state(state: Optional[Dict], hypernet, optimizer, ema, board, matcher, scaler,
                       log, meta_optimizer=None) -> Tuple[int, List[Dict]]:
    """(first epoch to run, summary rows so far) after loading ``state`` (:func:`read_resume_state`) into
    the weights, optimizer, EMA, board, meta layer and loss scaler, identically on every rank; every entry is
    checked first (UserError), so a run can apply it before it makes its folder."""
    if state is None:
        return 0, []
    _check_whole(state, optimizer, board, matcher, scaler, meta_optimizer)
    load_weights(hypernet, state['state_dict'])
    optimizer.set_state_dict(state['optimizer'])
    if meta_optimizer is not None and 'meta_optimizer' in state:
        meta_optimizer.set_state_dict(state['meta_optimizer'])
    if ema is not None and 'state_dict_ema' in state:
        ema.set_state_dict(state['state_dict_ema'])
    if board is not None and 'board' in state:
        board.load_state_dict(state['board'])
        matcher.set_state_dict(state['meta_layer'])
    if scaler is not None and state.get('amp_scaler'):
        scaler.load_state_dict(state['amp_scaler'])
    log(f"resumed from {state['path']} after epoch {state['epoch']}")
    for change in state.get('config_changes', []):
        log(f'changed on resume: {change}')
    return int(state['epoch']) + 1, list(state.get('rows', []))


def resume_if_asked(cfg, identity: Dict, hypernet, optimizer, ema, board, matcher, scaler,
                    log) -> Tuple[int, List[Dict]]:
    """:func:`read_resume_state` then :func:`apply_resume_state`."""
    state = read_resume_state(cfg, identity, hypernet)
    return apply_resume_state(state, hypernet, optimizer, ema, board, matcher, scaler, log)


def load_weights(hypernet: HyperNet, state_dict: Dict) -> None:
    """The hypernetwork's weights from a checkpoint: every key, written in place (fused storage kept)."""
    from pimm.models import assign_state_dict
    try:
        assign_state_dict(hypernet, state_dict)
    except (KeyError, ValueError) as e:
        raise UserError(f'the checkpoint does not fit this hypernetwork: {e.args[0] if e.args else e}') from None


def check_weights(hypernet: HyperNet, state_dict: Dict, path: str) -> None:
    """Refuse a checkpoint whose weights lack a key of ``hypernet`` or differ in shape, before any file
    of the run is written (``set_state_dict`` would skip missing keys with a warning each)."""
    from pimm.models import check_state_dict
    try:
        check_state_dict(hypernet, state_dict)
    except KeyError as e:
        raise UserError(f'{path}: {e.args[0]}') from None
