"""What ``retrain`` sets up before its loop: input checks, optimizer/scheduler/EMA/loss/AMP, resume."""
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import paddle
import paddle.nn as nn

from pimm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from pimm.models import check_state_dict, clean_state_dict, restore_checkpoint, select_state_dict
from pimm.optim import create_optimizer
from pimm.scheduler import Scheduler, create_scheduler
from pimm.utils import CheckpointFileError, ModelEma, load_paddle_file
from pimm.utils.amp import GradScaler
from pimm.utils.atomic import remove_stale_temp_files
from pimm.utils.distributed import broadcast_object, is_main_process

from .errors import UserError, require_file
from .model_builder import ModelInfo, build_model
from .output import refuse_existing_run
from .resume_checks import check_counter, check_optimizer_state, check_scaler_state
from .resume_config import config_changes, saved_config
from .pretrained import load_pretrained
from .search_setup import check_data_folders, check_training_keys
from .train_state import check_compatible, find_resume_checkpoint

__all__ = ['LAST_CHECKPOINT', 'EVAL_METRICS', 'Training', 'check_retrain_inputs', 'build_training',
           'checkpoint_identity', 'resume_path', 'read_retrain_resume', 'check_retrain_resume', 'resume_training',
           'start_from_pretrained', 'optional_number']

LAST_CHECKPOINT = 'last.pdparams'   # CheckpointSaver's every-epoch file
# EVAL_METRICS -> (evaluate() key, lower is better)
EVAL_METRICS = {'prec1': ('top1', False), 'prec5': ('top5', False), 'loss': ('loss', True)}


def optional_number(key: str, value: Any) -> Union[None, float, List[float]]:
    """A key that may be unset (None, '' or the official configs' string 'None'), a number or a list."""
    if value is None or (isinstance(value, str) and value.strip() in ('', 'None', 'none')):
        return None
    numbers = value if isinstance(value, (list, tuple)) else [value]
    if not numbers or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise UserError(f'{key} must be a number, a list of numbers or None, got {value!r}')
    return [float(v) for v in numbers] if isinstance(value, (list, tuple)) else float(value)


def _check_augmentation(cfg) -> None:
    aug = cfg.AUGMENTATION
    if (aug.MIXUP > 0 or aug.CUTMIX > 0) and cfg.DATASET.BATCH_SIZE % 2:
        raise UserError(f'AUGMENTATION.MIXUP/CUTMIX mix images in pairs: DATASET.BATCH_SIZE '
                        f'{cfg.DATASET.BATCH_SIZE} must be even')


def _check_resume(cfg) -> None:
    if cfg.RESUME_PATH:
        require_file(cfg.RESUME_PATH, 'RESUME_PATH')
    if not (cfg.RESUME_PATH or cfg.AUTO_RESUME):
        refuse_existing_run(cfg.SAVE_PATH, cfg.MODEL, 'retrain', LAST_CHECKPOINT, resumable=True)


def resume_path(cfg) -> Optional[str]:
    """The retrain checkpoint a run continues from: RESUME_PATH, else with AUTO_RESUME the newest
    ``SAVE_PATH/*-<MODEL>/last.pdparams``; None for a new run."""
    if cfg.RESUME_PATH:
        return cfg.RESUME_PATH
    return find_resume_checkpoint(cfg.SAVE_PATH, cfg.MODEL, LAST_CHECKPOINT) if cfg.AUTO_RESUME else None


def check_retrain_inputs(cfg, pretrained: bool = True) -> ModelInfo:
    """Everything a user can get wrong, checked before any process or file is started (single values:
    choices, ranges, OPT, SCHED, EPOCHS, ... were checked when the config was loaded). ``pretrained``
    False leaves out the trial load of ``NET.PRETRAINED``, for a caller that loads it itself before
    writing anything."""
    check_training_keys(cfg)
    _check_augmentation(cfg)
    check_data_folders(cfg)
    model, info = build_model(cfg)  # an unknown SELECTION or a bad ARCH_FILE / INPUT_ARCH fails here
    _check_resume(cfg)
    if pretrained and cfg.NET.PRETRAINED and not resume_path(cfg):
        # read and fitted here, before tools/main.py makes the run folder of a multi-process run
        load_pretrained(model, cfg.NET.PRETRAINED)
    return info


def start_from_pretrained(cfg, net: nn.Layer, resume: Optional[Tuple[str, Dict[str, Any]]]) -> List[str]:
    """Load ``NET.PRETRAINED`` into ``net`` (EMA weights preferred: the better starting point, whether or
    not this run keeps an EMA) unless the run resumes; returns the lines to log."""
    if not cfg.NET.PRETRAINED:
        return []
    if resume:  # the resumed weights started from PRETRAINED and include the fine-tuning done since
        return [f'NET.PRETRAINED {cfg.NET.PRETRAINED} ignored: resuming from {resume[0]}, whose weights '
                f'already include the fine-tuning']
    lines: List[str] = []
    load_pretrained(net, cfg.NET.PRETRAINED, use_ema=True, log=lines.append)
    return lines


@dataclass
class Training:
    """The pieces one optimisation step needs."""
    optimizer: paddle.optimizer.Optimizer
    scheduler: Scheduler
    num_epochs: int                                 # EPOCHS, plus COOLDOWN_EPOCHS for cosine
    ema: Optional[ModelEma]
    loss_fn: Callable[[paddle.Tensor, paddle.Tensor], paddle.Tensor]
    mixup: Optional[Any]                            # pimm.data.Mixup when MIXUP or CUTMIX > 0
    scaler: Optional[GradScaler]                    # AMP only


def _scheduler(cfg, optimizer, updates_per_epoch: int):
    return create_scheduler(
        optimizer, sched=cfg.SCHED.lower(), epochs=cfg.EPOCHS, decay_epochs=cfg.DECAY_EPOCHS,
        decay_rate=cfg.DECAY_RATE, warmup_epochs=cfg.WARMUP_EPOCHS, warmup_lr=cfg.WARMUP_LR, min_lr=cfg.MIN_LR,
        cooldown_epochs=cfg.COOLDOWN_EPOCHS, lr_noise=optional_number('LR_NOISE', cfg.LR_NOISE),
        lr_noise_pct=cfg.LR_NOISE_PCT, lr_noise_std=cfg.LR_NOISE_STD, seed=cfg.SEED,
        updates_per_epoch=updates_per_epoch, step_on_epochs=not cfg.SCHED_ON_UPDATES)


def _loss_and_mixup(cfg):
    aug = cfg.AUGMENTATION
    if aug.MIXUP > 0 or aug.CUTMIX > 0:
        from pimm.data import Mixup
        mixup = Mixup(mixup_alpha=aug.MIXUP, cutmix_alpha=aug.CUTMIX, label_smoothing=aug.SMOOTHING,
                      num_classes=cfg.DATASET.NUM_CLASSES)
        return SoftTargetCrossEntropy(), mixup     # the mixed targets carry the smoothing
    return LabelSmoothingCrossEntropy(aug.SMOOTHING), None


def build_training(cfg, net: nn.Layer, updates_per_epoch: int) -> Training:
    """timm's recipe: optimizer by OPT (no weight decay on biases and BN), scheduler by SCHED, EMA, loss."""
    optimizer = create_optimizer(net, opt=cfg.OPT.lower(), lr=cfg.LR, weight_decay=cfg.WEIGHT_DECAY,
                                 momentum=cfg.MOMENTUM, eps=cfg.OPT_EPS, filter_bias_and_bn=True,
                                 grad_clip_norm=cfg.CLIP_GRAD)
    scheduler, num_epochs = _scheduler(cfg, optimizer, updates_per_epoch)
    ema = None
    if cfg.NET.EMA.USE:
        ema = ModelEma(net, decay=cfg.NET.EMA.DECAY, device='cpu' if cfg.NET.EMA.FORCE_CPU else None)
    loss_fn, mixup = _loss_and_mixup(cfg)
    # Paddle's AMP recipe: float16 auto_cast around forward + loss, GradScaler around backward + step
    scaler = GradScaler(init_loss_scaling=1024) if cfg.AMP else None
    return Training(optimizer, scheduler, int(num_epochs), ema, loss_fn, mixup, scaler)


def checkpoint_identity(info: ModelInfo, num_classes: int) -> Dict[str, Any]:
    """What a checkpoint must share with this config to be resumed (stored in its ``args``)."""
    return {'arch': info.path, 'num_classes': num_classes}


def read_retrain_resume(cfg, identity: Dict[str, Any]) -> Optional[Tuple[str, Dict[str, Any]]]:
    """``(path, checkpoint)`` to continue from (RESUME_PATH, else with AUTO_RESUME the newest
    ``SAVE_PATH/*-<MODEL>/last.pdparams``), on every rank, or None.

    Rank 0 alone decides, reads and checks it (a checkpoint of another architecture or class count is
    refused naming the difference) and sends it to the other ranks: nodes need not share a folder, and a
    refusal reaches every rank. Temporary files a killed save left beside it are removed."""
    found = None
    if is_main_process():
        try:
            path = resume_path(cfg)
            if path:
                found = (path, _read_checkpoint(path, identity))
                found[1]['config_changes'] = config_changes(saved_config(found[1].get('args')), cfg, 'retrain',
                                                            path)
                remove_stale_temp_files(os.path.dirname(os.path.abspath(path)))
        except UserError as e:
            found = ('', {'refused': str(e)})
    found = broadcast_object(found)
    if found is not None and 'refused' in found[1]:
        raise UserError(found[1]['refused'])
    return found


def _read_checkpoint(path: str, identity: Dict[str, Any]) -> Dict[str, Any]:
    try:
        state = load_paddle_file(path)
    except CheckpointFileError as e:
        raise UserError(str(e)) from None
    if not isinstance(state, dict) or not isinstance(state.get('state_dict'), dict):
        raise UserError(f'{path}: not a training checkpoint (no state_dict): resume from a retrain run\'s '
                        f'last.pdparams or checkpoint-<epoch>.pdparams')
    args = state.get('args')
    if isinstance(args, dict) and 'arch' in args:
        check_compatible({k: args.get(k) for k in identity}, identity, path)
    return state


def check_retrain_resume(checkpoint: Dict[str, Any], net: nn.Layer, training: Training, path: str) -> None:
    """A retrain checkpoint fits what will load it: weights (raw and EMA) by key and shape, the optimizer
    state, the loss scaler's, the epoch counter (one UserError line each)."""
    try:
        check_state_dict(net, clean_state_dict(checkpoint['state_dict']))
        if training.ema is not None and 'state_dict_ema' in checkpoint:
            check_state_dict(net, clean_state_dict(checkpoint['state_dict_ema']))
    except (KeyError, ValueError) as e:
        raise UserError(f'{path}: {e.args[0] if e.args else e}') from None
    if 'epoch' in checkpoint:
        check_counter(checkpoint['epoch'], 'epoch', path)
    if isinstance(checkpoint.get('optimizer'), dict):
        check_optimizer_state(training.optimizer, checkpoint['optimizer'], path)
    check_scaler_state(training.scaler, checkpoint.get('amp_scaler'), path)


def resume_training(resume: Tuple[str, Dict[str, Any]], net: nn.Layer, training: Training) -> int:
    """Weights, optimizer state, loss scale and EMA from ``resume`` (:func:`read_retrain_resume`);
    returns the next epoch."""
    path, checkpoint = resume
    try:
        start_epoch = restore_checkpoint(net, checkpoint, training.optimizer, training.scaler, path)
        if training.ema is not None:
            training.ema.set_state_dict(select_state_dict(checkpoint, use_ema=True, where=path))
    except CheckpointFileError as e:
        raise UserError(str(e)) from None
    except (KeyError, ValueError) as e:
        raise UserError(f'{path}: {e.args[0] if e.args else e}') from None
    return start_epoch or 0
