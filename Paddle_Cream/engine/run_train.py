"""``tools/main.py train``: Cream (or SPOS) supernet training, the search itself (docs/reference.md §5)."""
import hashlib
import json
import math
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import paddle
from tqdm import tqdm

from pimm.data import set_loader_epoch
from pimm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from pimm.utils import count_params

from ..models.hypernet import HyperNet
from ..search import MetaMatcher, PrioritizedBoard
from ..search.supernet_step import SearchSettings, SupernetStep
from pimm.utils.distributed import broadcast_tensors, get_rank, init_distributed, is_main_process
from .distributed import cpu_math_threads, sync_batch_norm
from .errors import check_finite_loss
from .evaluate import evaluate
from .path_eval import PathEvaluator, bn_loader
from .next_step import next_command, next_model
from .output import create_output_dir, retrain_command, setup_logging, write_json_atomic
from .plots import plot_board, plot_curves
from .search_budget import SearchSpace, make_sampler
from .search_setup import (apply_resume_state, build_meta_optimizer, build_optimization, check_train_inputs,
                           read_resume_state, search_behaviour, train_loaders)
from .seeding import epoch_seed, seed_everything
from .summary import write_summary
from .train_state import CHECKPOINT_NAME, save_train_state

__all__ = ['near_chance_warning', 'run_train']


def _settings(cfg) -> SearchSettings:
    s = cfg.SUPERNET
    return SearchSettings(method=s.METHOD, pick_method=s.PICK_METHOD, meta_sta_epoch=s.META_STA_EPOCH,
                          update_iter=s.UPDATE_ITER, slice_size=s.SLICE, meta_lr=cfg.META_LR,
                          sample_from_board=s.HOW_TO_PROB == 'teacher', behaviour=search_behaviour(cfg))


def _validate_path(hypernet: HyperNet, path, loader, show: bool) -> Dict[str, float]:
    hypernet.eval()

    def run(images):
        with paddle.no_grad():
            return hypernet(images, path)
    metrics = evaluate(run, loader, len(loader), show_progress=show, desc='validate')
    hypernet.train()
    return metrics


def board_digest(board) -> str:
    """SHA-1 of the board's paths, accuracies, FLOPs, latencies and stored slices."""
    h = hashlib.sha1(json.dumps(board.summary(), sort_keys=True).encode())
    for entry in board.entries:
        h.update(np.ascontiguousarray(entry.inputs.numpy()).tobytes())
        h.update(np.ascontiguousarray(entry.soft_labels.numpy()).tobytes())
    return h.hexdigest()


def _train_epoch(step: SupernetStep, loader, epoch: int, iters_done: int, scheduler, log, show: bool,
                 checkpoint: str):
    totals = np.zeros(4)   # loss and top-1 summed over the finite iterations, their count, all iterations
    # driven by hand: the last iteration settles after the loop, and the bar's last display must include it
    bar = tqdm(total=len(loader), desc=f'epoch {epoch}', disable=not show, dynamic_ncols=True)

    def settled(out) -> None:  # an iteration's figures reach the host one iteration later
        if out is None:
            return
        totals[3] += 1
        if check_finite_loss(out.loss, epoch, int(totals[3]), checkpoint, step.scaler):
            totals[:3] += [out.loss, out.top1, 1]
        if totals[2]:   # the epoch's means so far, as the epoch's log line gives them at its end
            bar.set_postfix(loss=f'{totals[0] / totals[2]:.4f}', top1=f'{totals[1] / totals[2]:.2f}',
                            board=len(step.board or []), refresh=False)
        if out.meta is not None:
            log(f"  meta-matching update at iteration {iters_done + int(totals[3])}: "
                f"val loss {out.meta['val_loss']:.4f}, |grad| {out.meta['meta_grad_norm']:.3g}")
    with bar:
        for batch_idx, (images, targets) in enumerate(loader):
            lr = step.optimizer.get_lr()
            settled(step(images, targets, epoch, iters_done + batch_idx, lr, batch_idx=batch_idx))
            scheduler.step_update(iters_done + batch_idx + 1)
            bar.update()
        settled(step.finish())
    n = max(totals[2], 1)
    return {'loss': totals[0] / n, 'top1': totals[1] / n, 'lr': step.optimizer.get_lr()}, int(totals[3])


def run_train(cfg) -> Dict:
    """Train the hypernetwork, keep the prioritized board, write best_arch.json."""
    space = check_train_inputs(cfg)
    sta_num, resolution = space.sta_num, space.resolution
    world = init_distributed()
    cpu_math_threads(world)
    main = is_main_process()
    s = cfg.SUPERNET
    image_size = cfg.DATASET.IMAGE_SIZE or resolution
    identity = dict(sta_num=sta_num, resolution=resolution, image_size=image_size,
                    num_classes=cfg.DATASET.NUM_CLASSES, method=s.METHOD, **space.identity())
    seed_everything(cfg.SEED)
    # the data and the checkpoint to resume are checked before any file is written
    train_loader, val_loader = train_loaders(cfg, image_size, world)
    hypernet = HyperNet(sta_num, cfg.DATASET.NUM_CLASSES, drop_rate=cfg.NET.DROPOUT_RATE,
                        drop_path_rate=cfg.NET.DROP_PATH_RATE, global_pool=cfg.NET.GP, resolution=image_size)
    resume = read_resume_state(cfg, identity, hypernet)
    early = []   # lines for the log, which exists once the resume has been applied

    if world > 1 and cfg.BATCHNORM.SYNC_BN:
        sync_batch_norm(hypernet)
    early.append(f'hypernetwork: layers per searched stage {sta_num}, search resolution {resolution}px, training at '
                 f'{image_size}px, {count_params(hypernet) / 1e6:.2f}M params; {space.describe()}; {s.METHOD} on '
                 f'{world} process(es){", AMP float16" if cfg.AMP else ""}')
    if s.METHOD == 'cream':
        early.append(search_behaviour(cfg).describe())
    board = PrioritizedBoard(s.POOL_SIZE, cfg.ACC_GAP, cost=space.cost) if s.METHOD == 'cream' else None
    matcher = MetaMatcher(cfg.DATASET.NUM_CLASSES, s.SLICE) if s.METHOD == 'cream' else None
    meta_optimizer = build_meta_optimizer(cfg, matcher)
    optimizer, scheduler, ema, scaler = build_optimization(cfg, hypernet, len(train_loader), meta_optimizer)
    fused = getattr(optimizer, 'fused', None)
    broadcast_tensors(fused.values if fused is not None else list(hypernet.state_dict().values()))  # rank 0's
    if matcher is not None:
        broadcast_tensors(matcher.parameters())
    step = SupernetStep(hypernet, optimizer, None, _settings(cfg), LabelSmoothingCrossEntropy(
        cfg.AUGMENTATION.SMOOTHING), SoftTargetCrossEntropy(), board, matcher, ema=ema, scaler=scaler,
        latency_fn=space.latency_fn, meta_optimizer=meta_optimizer)
    start_epoch, rows = apply_resume_state(resume, hypernet, optimizer, ema, board, matcher, scaler, early.append,
                                           meta_optimizer)
    # every input, the resumed checkpoint whole included, has been checked: the run folder is made now
    out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'train', write=main)
    log = setup_logging(os.path.join(out_dir, 'train.log') if main else None, main).info
    for line in early:
        log(line)
    if fused is not None:
        fused.check()  # every tensor and gradient still in its unit's buffers after loading
    if ema is not None and start_epoch == 0:
        ema.set(hypernet)  # rank 0's initial weights
    scheduler.step_update(start_epoch * len(train_loader))

    for epoch in range(start_epoch, cfg.EPOCHS):
        seed = epoch_seed(cfg.SEED, epoch)
        seed_everything(seed)
        step.sampler = make_sampler(cfg, space, seed)
        set_loader_epoch(train_loader, epoch)
        start = time.time()
        train_metrics, iters = _train_epoch(step, train_loader, epoch, epoch * len(train_loader), scheduler,
                                            log, main, os.path.join(out_dir, CHECKPOINT_NAME))
        val_path, val_flops = step.sampler.sample(board)
        val_latency = space.latency_of(val_path)
        val = _validate_path(hypernet, val_path, val_loader, main)
        row = dict(epoch=epoch, train_loss=train_metrics['loss'], train_top1=train_metrics['top1'],
                   eval_loss=val['loss'], eval_top1=val['top1'], eval_top5=val['top5'], lr=train_metrics['lr'],
                   eval_path_flops=val_flops, board_size=len(board) if board else 0,
                   seconds=time.time() - start)
        if val_latency is not None:  # summary.csv keeps its columns without a latency table
            row['eval_path_latency_ms'] = val_latency
        rows.append(row)
        cost = f'{val_flops:.1f}M' + ('' if val_latency is None else f', {val_latency:.2f} ms')
        log(f"epoch {epoch}: train loss {row['train_loss']:.4f} top-1 {row['train_top1']:.2f} | random path "
            f"{val_path} ({cost}) val top-1 {val['top1']:.2f} (running BN) | board {row['board_size']} | "
            f"{row['seconds']:.0f}s")
        if board is not None and world > 1:
            # every rank says which board it holds (its launch log), so identical boards can be checked
            print(f'[rank {get_rank()}] epoch {epoch} board digest {board_digest(board)}', flush=True)
        if main:
            _save_epoch(out_dir, cfg, epoch, rows, hypernet, optimizer, ema, board, matcher, scaler, identity, space,
                        meta_optimizer)
    result = _finish(cfg, out_dir, hypernet, board, space, val_loader, image_size, main, log)
    warning = (near_chance_warning(rows[-1]['train_loss'], cfg.DATASET.NUM_CLASSES, cfg.SUPERNET.METHOD)
               if rows else None)
    if warning:
        log(warning)
    return result


def near_chance_warning(loss: float, num_classes: int, method: str = 'cream') -> Optional[str]:
    """The one line saying a supernet has not learned, when its last epoch's train loss is at 90% of chance
    (ln C, the loss of a uniform guess whatever the label smoothing) or above, with what to try for its
    ``method``; None otherwise."""
    chance = math.log(num_classes) if num_classes > 1 else 0.
    if not chance or not math.isfinite(loss) or loss < 0.9 * chance:
        return None
    where = 'above' if loss > chance else 'near'
    if method == 'spos':   # SPOS has no prior to concentrate: its paths are uniform by design
        advice = ("SPOS samples its paths uniformly, which at small scale does not learn (Cream with a "
                  "concentrated SUPERNET.PRE_PROB does: configs/demo/train.yaml says why); try more data or EPOCHS, "
                  "or another LR (lower if the loss rose above chance)")
    else:
        advice = ("try a more concentrated SUPERNET.PRE_PROB (HOW_TO_PROB pre_prob: at small scale uniformly "
                  "sampled paths do not learn; configs/demo/train.yaml says why the demo puts 0.9 on choice 3), "
                  "more EPOCHS, or another LR (lower if the loss rose above chance)")
    return (f"warning: the supernet has not learned: its last epoch's train loss {loss:.3f} is {where} chance "
            f"(ln {num_classes} = {chance:.3f}), so its board and chosen path mean little; {advice}")


def _save_epoch(out_dir, cfg, epoch, rows, hypernet, optimizer, ema, board, matcher, scaler, identity,
                space: SearchSpace, meta_optimizer=None) -> None:
    s = cfg.SUPERNET
    state = dict(epoch=epoch, version=2, state_dict=hypernet.state_dict(), optimizer=optimizer.state_dict(),
                 search=identity, rows=rows, config=cfg.dump())
    if scaler is not None:
        state['amp_scaler'] = scaler.state_dict()
    if ema is not None:
        state['state_dict_ema'] = ema.state_dict()
    if board is not None:
        state['board'] = board.state_dict()
        state['meta_layer'] = matcher.state_dict()
        if meta_optimizer is not None:
            state['meta_optimizer'] = meta_optimizer.state_dict()
        write_json_atomic(board.summary(), os.path.join(out_dir, 'board.json'))
        plot_board(board.summary(), *space.cost_budget(), os.path.join(out_dir, 'board.png'),
                   title=f'prioritized board after epoch {epoch}', cost=space.cost,
                   note=None if space.latency is None else space.latency.describe())
    save_train_state(out_dir, state)
    write_summary(rows, os.path.join(out_dir, 'summary.csv'))
    plot_curves(rows, os.path.join(out_dir, 'curves.png'), title=f'{s.METHOD} supernet training',
                labels=SEARCH_CURVES, notes={'eval_top1': [_flops_note(r) for r in rows]})


# curves.png's legend: the val figures of each epoch are those of another random path, not of one network
SEARCH_CURVES = {'train_loss': "train loss (mean over the epoch's sampled paths)",
                 'train_top1': "train batch top-1 (mean over the epoch's sampled paths)",
                 'eval_loss': 'val loss of a random path each epoch (running BN)',
                 'eval_top1': "val top-1 of a random path each epoch (running BN), labelled with the path's MFLOPs",
                 'eval_top5': 'val top-5 of a random path each epoch (running BN)'}


def _flops_note(row: Dict) -> str:
    return f"{row['eval_path_flops']:.0f}M" if isinstance(row.get('eval_path_flops'), (int, float)) else ''


def _finish(cfg, out_dir, hypernet, board, space: SearchSpace, val_loader, image_size, main, log) -> Dict:
    """best_arch.json: the board's best path (Cream picks it directly from the prioritized paths), scored
    with its own recomputed BN statistics (``top1``, as SPOS and ``evolve`` score a path) and with the
    supernet's running ones, which mix every sampled path (``top1_running_bn``)."""
    if board is None or len(board) == 0:
        why = ('SPOS keeps no board' if board is None else
               f'the board stayed empty (it fills after META_STA_EPOCH {cfg.SUPERNET.META_STA_EPOCH}; EPOCHS '
               f'{cfg.EPOCHS})')
        config = 'configs/demo/evolve.yaml' if cfg.DATASET.DEMO else 'configs/evolve.yaml'
        command = next_command('evolve', config, [
            ('RESUME_PATH', os.path.join(out_dir, CHECKPOINT_NAME)), ('DATA_DIR', cfg.DATA_DIR),
            ('DATASET.NUM_CLASSES', cfg.DATASET.NUM_CLASSES), *_evolve_limits(cfg, space),
            ('MODEL', next_model(cfg.MODEL, 'evolve'))])
        log(f'{why}: choose an architecture by evolutionary search: {command}')
        return {}
    best = board.best()
    running = _validate_path(hypernet, best.path, val_loader, main)
    # EVOLVE.BN_BATCHES training batches, evaluation transform; scored on the whole val split
    val = PathEvaluator(hypernet, bn_loader(cfg, image_size), val_loader).score(best.path, keep_statistics=True)
    arch_file = os.path.join(out_dir, 'best_arch.json')
    result = dict(arch=best.path, flops=best.flops, top1=val['top1'], top5=val['top5'],
                  top1_running_bn=running['top1'], top5_running_bn=running['top5'], board_top1=best.top1,
                  resolution=space.resolution, **space.arch_entries(best.path),
                  method=cfg.SUPERNET.METHOD, behaviour=dict(FOLLOW=cfg.SUPERNET.FOLLOW,
                                                             **search_behaviour(cfg).as_dict()),
                  checkpoint=os.path.join(out_dir, 'checkpoint-last.pdparams'),
                  retrain_command=retrain_command(cfg, arch_file))
    if main:
        write_json_atomic(result, arch_file)
        flops_budget = 'no budget' if space.flops_budget is None else 'budget [{}, {}]'.format(*space.flops_budget)
        latency = '' if space.latency is None else (
            f", predicted {result['latency_ms']:.2f} ms (budget [{space.latency_budget[0]}, "
            f"{space.latency_budget[1]}]) with {space.latency.describe()}")
        log(f"chosen architecture {best.path}: {best.flops:.1f} MFLOPs ({flops_budget}){latency}, inherited weights: "
            f"val top-1 {val['top1']:.2f} with its own recomputed BN statistics ({running['top1']:.2f} with the "
            f"supernet's running ones)")
        log(f'files in {out_dir}: best_arch.json, board.json, board.png, curves.png, summary.csv, train.log, '
            f'checkpoint-last.pdparams')
        log(f"retrain it: {result['retrain_command']}")
    return result


def _evolve_limits(cfg, space: SearchSpace) -> List[Tuple[str, Any]]:
    """The evolve settings holding its candidates to this search's budgets: its FLOPs budget (evolve's limit
    is SUPERNET.FLOPS_MAXIMUM unless EVOLVE.FLOPS_LIMIT is set) and its latency table and limit."""
    settings: List[Tuple[str, Any]] = []
    if space.flops_budget is not None:
        settings += [('SUPERNET.FLOPS_MINIMUM', cfg.SUPERNET.FLOPS_MINIMUM),
                     ('SUPERNET.FLOPS_MAXIMUM', cfg.SUPERNET.FLOPS_MAXIMUM)]
    if space.latency is not None:
        settings += [('EVOLVE.LATENCY_LIMIT', space.latency_budget[1]),
                     ('EVOLVE.LATENCY_TABLE', os.path.abspath(space.table.file))]
    return settings
