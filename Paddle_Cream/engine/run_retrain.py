"""``tools/main.py retrain``: train one child network from scratch, the official recipe (docs/reference.md §6),
or fine-tune it from ``NET.PRETRAINED`` weights."""
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn
from tqdm import tqdm

import Paddle_Cream  # noqa: F401  (registers the cream_* models)
from pimm.data import set_loader_epoch
from pimm.utils import CheckpointSaver, format_complexity, model_complexity, update_summary

from pimm.utils.distributed import all_reduce_sum_, get_rank, init_distributed, is_main_process
from .distributed import cpu_math_threads, data_parallel
from .evaluate import evaluate
from .model_builder import ModelInfo, build_model
from .next_step import next_command, next_model
from .output import create_output_dir, setup_logging, write_json_atomic
from .plots import plot_curves
from .errors import check_finite_loss
from .retrain_setup import (EVAL_METRICS, LAST_CHECKPOINT, Training, build_training, check_retrain_inputs,
                            check_retrain_resume, checkpoint_identity, optional_number, read_retrain_resume,
                            resume_training, start_from_pretrained)
from .search_setup import train_loaders
from .seeding import epoch_seed, seed_everything
from .summary import read_summary, write_summary

__all__ = ['run_retrain', 'train_one_epoch', 'SUMMARY']

SUMMARY = 'summary.csv'


def _output_dir(cfg, resume: Optional[str], main: bool) -> str:
    """A run found by AUTO_RESUME goes on in its own folder; anything else gets SAVE_PATH/<MMDD>-<MODEL>/."""
    if not resume or cfg.RESUME_PATH:
        return create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'retrain', write=main)
    out_dir = os.path.dirname(os.path.abspath(resume))
    if main:
        with open(os.path.join(out_dir, 'retrain_config.yaml'), 'w') as f:
            f.write(cfg.dump())
    return out_dir


def _step(model: nn.Layer, training: Training, x: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
    """One update (mixup, forward, loss, backward, optimizer, EMA); returns the loss (on the device)."""
    if training.mixup is not None:
        x, y = training.mixup(x, y)
    with paddle.amp.auto_cast(enable=training.scaler is not None):
        loss = training.loss_fn(model(x), y)
    if training.scaler is None:
        loss.backward()
        training.optimizer.step()
    else:  # the loss is scaled for the float16 backward; step() unscales and skips steps that overflowed
        training.scaler.scale(loss).backward()
        training.scaler.step(training.optimizer)
        training.scaler.update()
    training.optimizer.clear_grad()
    if training.ema is not None:
        training.ema.update(model)
    return loss.detach()


def _tensor(batch) -> paddle.Tensor:
    return batch if isinstance(batch, paddle.Tensor) else paddle.to_tensor(batch)


def train_one_epoch(model: nn.Layer, training: Training, loader, epoch: int, num_updates: int, log,
                    show: bool, log_interval: int, checkpoint: str = '') -> Tuple[float, int]:
    """(mean training loss over all processes, updates done so far). A non-finite loss stops the run
    (``checkpoint``: the last good one, named in the message), decided on the loss summed over the ranks so
    every rank stops alike; under AMP a non-finite loss is an overflow the loss scaler skips, and stops the
    run only once the scale is down to its floor (:func:`~Paddle_Cream.engine.errors.check_finite_loss`)."""
    model.train()
    sums = np.zeros(2)
    bar = tqdm(loader, desc=f'epoch {epoch}', disable=not show, dynamic_ncols=True)
    for batch_idx, (images, targets) in enumerate(bar):
        loss = _step(model, training, _tensor(images), _tensor(targets))
        count = paddle.full([], len(targets), 'float64')
        batch = all_reduce_sum_(paddle.stack([loss.astype('float64') * count, count])).numpy()   # the one copy
        loss = float(batch[0] / batch[1])
        if check_finite_loss(loss, epoch, batch_idx + 1, checkpoint, training.scaler):
            sums += batch
        num_updates += 1
        training.scheduler.step_update(num_updates, metric=sums[0] / sums[1])
        if sums[1]:   # the epoch's mean so far (the figure the epoch's log line ends on), not this batch's
            bar.set_postfix(loss=f'{sums[0] / sums[1]:.4f}', lr=f'{training.optimizer.get_lr():.3g}', refresh=False)
        if log_interval and (batch_idx + 1) % log_interval == 0:
            log(f'  epoch {epoch} [{batch_idx + 1}/{len(loader)}] loss {sums[0] / sums[1]:.4f} '
                f'lr {training.optimizer.get_lr():.4g}')
    return float(sums[0] / max(sums[1], 1)), num_updates


def _validate(net: nn.Layer, loader, show: bool, desc: str) -> Dict[str, float]:
    """loss/top1/top5 of ``net`` in eval mode (on the device of its weights), every image counted once."""
    place = next(iter(net.parameters())).place
    was_training = net.training
    net.eval()

    def run(images: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return net(paddle.to_tensor(images, place=place)).numpy()
    try:
        metrics = evaluate(run, loader, len(loader), show_progress=show, desc=desc)
    finally:
        if was_training:
            net.train()
    return {k: metrics[k] for k in ('loss', 'top1', 'top5')}


def _restore_saver(saver: CheckpointSaver, rows: List[Dict], column: str, out_dir: str) -> None:
    """Let a resumed run's saver know the best-k checkpoints already on disk (ranked by their summary rows)."""
    kept = []
    for row in rows:
        path = os.path.join(out_dir, f"{saver.save_prefix}-{row['epoch']}{saver.extension}")
        if os.path.isfile(path) and isinstance(row.get(column), (int, float)):
            kept.append((path, float(row[column]), int(row['epoch'])))
    kept.sort(key=lambda c: c[1], reverse=not saver.decreasing)  # stable: ties keep the earlier epoch first
    saver.checkpoint_files = [(path, metric) for path, metric, _ in kept]
    if kept:
        saver.best_metric, saver.best_epoch = kept[0][1], kept[0][2]


def _previous_rows(resume: Optional[str], start_epoch: int, out_dir: str) -> List[Dict]:
    """Summary rows of the epochs before ``start_epoch`` (from the resumed run), rewritten into ``out_dir``
    (a fresh run starts a fresh file)."""
    by_epoch = {}
    if resume:  # the last row of an epoch wins
        for row in read_summary(os.path.join(os.path.dirname(os.path.abspath(resume)), SUMMARY)):
            if isinstance(row.get('epoch'), int) and row['epoch'] < start_epoch:
                by_epoch[row['epoch']] = row
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    write_summary(rows, os.path.join(out_dir, SUMMARY))
    return rows


def _epoch_metrics(net: nn.Layer, training: Training, loader, show: bool) -> Dict[str, float]:
    metrics = _validate(net, loader, show, 'validate')
    if training.ema is not None:
        ema = _validate(training.ema.module, loader, show, 'validate EMA')
        metrics.update({f'ema_{k}': v for k, v in ema.items()})
    return metrics


# curves.png's legend: every point is the one network being retrained, at the end of an epoch
RETRAIN_CURVES = {'train_loss': 'train loss (mean over the epoch)', 'eval_loss': 'val loss',
                  'eval_top1': 'val top-1', 'eval_top5': 'val top-5', 'eval_ema_loss': 'val loss of the EMA weights',
                  'eval_ema_top1': 'val top-1 of the EMA weights', 'eval_ema_top5': 'val top-5 of the EMA weights'}


def _save_epoch(out_dir: str, saver: CheckpointSaver, epoch: int, train: Dict[str, float],
                metrics: Dict[str, float], lr: float, score: float, title: str) -> None:
    """The summary.csv row, then the checkpoints (a resumed run drops rows past its checkpoint), then
    curves.png."""
    path = os.path.join(out_dir, SUMMARY)
    update_summary(epoch, train, metrics, path, write_header=not os.path.exists(path), lr=lr)
    saver.save_checkpoint(epoch, metric=score)
    plot_curves(read_summary(path), os.path.join(out_dir, 'curves.png'), title=title, labels=RETRAIN_CURVES)


def _use_commands(cfg, info: ModelInfo, out_dir: str, best: str) -> Dict[str, str]:
    """The ``test``, ``export`` and ``predict`` lines for ``best`` (a -1 network's path goes to arch.json):
    the demo's configs after a demo retrain, the general ones otherwise; predict classifies DATA_DIR/val."""
    if info.name.startswith('Cream-'):
        net = [('NET.SELECTION', cfg.NET.SELECTION)]
    else:
        arch_file = os.path.join(out_dir, 'arch.json')
        # resolution: the size it was trained at, which NET.ARCH_FILE then builds by default; the latency
        # an evolve predicted for this architecture goes along with it
        write_json_atomic({'arch': info.path, 'resolution': info.input_size, **info.latency}, arch_file)
        net = [('NET.SELECTION', -1), ('NET.ARCH_FILE', arch_file)]
    trained = [*net, ('RESUME_PATH', best), ('DATASET.NUM_CLASSES', cfg.DATASET.NUM_CLASSES),
               ('DATASET.IMAGE_SIZE', info.input_size), ('DATASET.CROP_PCT', cfg.DATASET.CROP_PCT)]
    folder = 'configs/demo' if cfg.DATASET.DEMO else 'configs'
    commands = {mode: next_command(mode, f'{folder}/{mode}.yaml', [*trained, ('DATA_DIR', cfg.DATA_DIR),
                                                                   ('MODEL', next_model(cfg.MODEL, mode))])
                for mode in ('test', 'export')}
    commands['predict'] = next_command('predict', f'{folder}/predict.yaml', [
        *trained, ('INPUT', os.path.join(cfg.DATA_DIR, 'val')), ('MODEL', next_model(cfg.MODEL, 'predict'))])
    return commands


def _log_epoch(log, epoch: int, train_loss: float, metrics: Dict[str, float], lr: float, seconds: float) -> None:
    ema = f" | EMA top-1 {metrics['ema_top1']:.2f} top-5 {metrics['ema_top5']:.2f}" if 'ema_top1' in metrics else ''
    log(f"epoch {epoch}: train loss {train_loss:.4f} | val loss {metrics['loss']:.4f} top-1 {metrics['top1']:.2f} "
        f"top-5 {metrics['top5']:.2f}{ema} | lr {lr:.4g} | {seconds:.0f}s")


@dataclass
class _Run:
    """Everything the epoch loop uses."""
    cfg: Any
    info: ModelInfo
    net: nn.Layer                      # the network itself
    model: nn.Layer                    # what trains: the network, or DataParallel around it
    training: Training
    train_loader: Any
    val_loader: Any
    out_dir: str
    log: Callable[[str], None]
    main: bool
    metric: str                        # the metrics key checkpoints are ranked by, e.g. 'ema_top1'
    saver: Optional[CheckpointSaver] = None


def _prepare(cfg) -> Tuple[_Run, Optional[Tuple[str, Dict]]]:
    """Model, the checkpoint to resume and the loaders (all checked before any file is written), output
    folder, log, optimizer/scheduler/EMA/loss; and the resume ``(path, checkpoint)``."""
    world = init_distributed()
    cpu_math_threads(world)
    main = is_main_process()
    seed_everything(cfg.SEED)
    net, info = build_model(cfg)
    resume = read_retrain_resume(cfg, checkpoint_identity(info, cfg.DATASET.NUM_CLASSES))
    # before the EMA copies the network: a fine-tuning's EMA starts from the pretrained weights too
    early = start_from_pretrained(cfg, net, resume)
    train_loader, val_loader = train_loaders(cfg, info.input_size, world)
    training = build_training(cfg, net, len(train_loader))
    if resume:   # checked whole against what will load it, before the run folder is made or written
        check_retrain_resume(resume[1], net, training, resume[0])
    out_dir = _output_dir(cfg, resume[0] if resume else None, main)
    log = setup_logging(os.path.join(out_dir, 'retrain.log') if main else None, main).info
    log(f'{info.name} {info.path} @{info.input_size}px: '
        f'{format_complexity(*model_complexity(net, info.input_size))}; {world} process(es)')
    for line in early:
        log(line)
    model = data_parallel(net, world, cfg.BATCHNORM.SYNC_BN)
    metric = ('ema_' if training.ema is not None else '') + EVAL_METRICS[cfg.EVAL_METRICS.lower()][0]
    return _Run(cfg, info, net, model, training, train_loader, val_loader, out_dir, log, main, metric), resume


def _resume(run: _Run, resume: Optional[Tuple[str, Dict]]) -> int:
    """The first epoch to train: restores a checkpoint, the summary rows before it, the saver and schedule."""
    cfg, identity = run.cfg, checkpoint_identity(run.info, run.cfg.DATASET.NUM_CLASSES)
    start_epoch = resume_training(resume, run.net, run.training) if resume else 0
    path = resume[0] if resume else None
    if resume:
        run.log(f'resumed from {path}: continuing at epoch {start_epoch}')
        for change in resume[1].get('config_changes', []):
            run.log(f'changed on resume: {change}')
    override = optional_number('START_EPOCH', cfg.START_EPOCH)
    start_epoch = start_epoch if override is None else int(override)
    if run.main:
        # class_names: the label order of the training folder, for predict to name what it finds
        args = dict(cfg.to_dict(), model=run.info.name, input_size=run.info.input_size,
                    class_names=list(run.train_loader.dataset.classes), **identity)
        run.saver = CheckpointSaver(run.net, run.training.optimizer, args=args, model_ema=run.training.ema,
                                    checkpoint_dir=run.out_dir, recovery_dir=run.out_dir,
                                    decreasing=EVAL_METRICS[cfg.EVAL_METRICS.lower()][1],
                                    max_history=cfg.CHECKPOINT_HIST, amp_scaler=run.training.scaler)
        rows = _previous_rows(path, start_epoch, run.out_dir)
        _restore_saver(run.saver, rows, 'eval_' + run.metric, run.out_dir)
    if start_epoch > 0:
        run.training.scheduler.step(start_epoch)
        run.training.scheduler.step_update(start_epoch * len(run.train_loader))
    return start_epoch


def _run_epoch(run: _Run, epoch: int, num_updates: int) -> int:
    """Train one epoch, validate (and the EMA), step the schedule, write the epoch's files; returns updates."""
    cfg, training = run.cfg, run.training
    # per rank, as timm does: the processes' dropout, drop-path and augmentation draws must differ
    seed_everything(epoch_seed(cfg.SEED + get_rank(), epoch))
    set_loader_epoch(run.train_loader, epoch)
    off = cfg.AUGMENTATION.MIXUP_OFF_EPOCH
    if training.mixup is not None and off and epoch >= off:
        training.mixup.mixup_enabled = False
    start = time.time()
    train_loss, num_updates = train_one_epoch(run.model, training, run.train_loader, epoch, num_updates, run.log,
                                              run.main, cfg.LOG_INTERVAL, os.path.join(run.out_dir, LAST_CHECKPOINT))
    lr = training.optimizer.get_lr()
    metrics = _epoch_metrics(run.net, training, run.val_loader, run.main)
    training.scheduler.step(epoch + 1, metrics[run.metric])
    seconds = time.time() - start
    _log_epoch(run.log, epoch, train_loss, metrics, lr, seconds)
    if run.main:
        _save_epoch(run.out_dir, run.saver, epoch, {'loss': train_loss, 'seconds': seconds}, metrics, lr,
                    metrics[run.metric], title=f'retraining {run.info.name}')
    return num_updates


def run_retrain(cfg) -> Dict:
    """Retrain the configured network; writes checkpoints, summary.csv, curves.png and retrain.log."""
    check_retrain_inputs(cfg, pretrained=False)   # _prepare loads NET.PRETRAINED before any file is written
    run, resume = _prepare(cfg)
    start_epoch = _resume(run, resume)
    updates_per_epoch = len(run.train_loader)
    run.log(f'training epochs {start_epoch}..{run.training.num_epochs - 1}, {updates_per_epoch} updates an epoch, '
            f'{cfg.OPT} lr {cfg.LR} ({cfg.SCHED}), EMA {cfg.NET.EMA.USE}, AMP {cfg.AMP}; files in {run.out_dir}')
    num_updates = start_epoch * updates_per_epoch
    for epoch in range(start_epoch, run.training.num_epochs):
        num_updates = _run_epoch(run, epoch, num_updates)
    return _finish(run) if run.main else {}


def _finish(run: _Run) -> Dict:
    """Log where the best checkpoint is and the command that evaluates it."""
    cfg, saver, log = run.cfg, run.saver, run.log
    if saver.best_epoch is None:
        log(f'no epoch was trained: EPOCHS {cfg.EPOCHS} already reached in {run.out_dir}')
        return {}
    best = os.path.join(run.out_dir, f'model_best{saver.extension}')
    commands = _use_commands(cfg, run.info, run.out_dir, best)
    log(f'best eval_{run.metric} {saver.best_metric:.2f} at epoch {saver.best_epoch}: {best}')
    log(f'files in {run.out_dir}: model_best.pdparams, last.pdparams, checkpoint-<epoch>.pdparams (best '
        f'{cfg.CHECKPOINT_HIST}), summary.csv, curves.png, retrain.log')
    log(f"evaluate it: {commands['test']}")
    log(f"export it: {commands['export']}")
    log(f"classify images with it: {commands['predict']}")
    return dict(out_dir=run.out_dir, best_checkpoint=best, best_epoch=saver.best_epoch,
                best_metric=saver.best_metric, metric=run.metric, test_command=commands['test'],
                export_command=commands['export'], predict_command=commands['predict'])
