"""``tools/main.py rank``: how well a supernet ranks paths (docs/reference.md §8).

``RANK.NUM_PATHS`` random paths within the FLOPs budget (SUPERNET.FLOPS_MINIMUM..EVOLVE.FLOPS_LIMIT, the
latter defaulting to SUPERNET.FLOPS_MAXIMUM) are scored with the weights inherited from the search
checkpoint (RESUME_PATH; BN recomputed per path as ``evolve`` does), then each is retrained from scratch
for ``RANK.RETRAIN_EPOCHS`` (None: EPOCHS) with the retrain recipe of the config (OPT, SCHED, LR, ...,
the pieces of ``tools/main.py retrain``) and scored again on the same fixed validation images. Kendall's
tau-b and Spearman's rho between the two top-1 lists go to ``rank.json``, the scatter to ``rank.png``.
"""
import math
import os
import time
from typing import Dict

import numpy as np
import paddle

from pimm.data import set_loader_epoch
from pimm.inference import threads_beside_loader

from ..config.config import Config
from ..models import ChildNet
from ..search.flops_table import PathFlops
from ..search.rank_correlation import kendall_tau, spearman_rho
from ..search.sampler import PathSampler
from .errors import UserError
from .evaluate import evaluate
from .output import create_output_dir, refuse_existing_run, setup_logging, write_json_atomic
from .path_eval import PathEvaluator, check_path_eval_inputs, fixed_loaders, flops_limit, load_search_checkpoint
from .plots import plot_xy
from .retrain_setup import build_training
from .run_retrain import train_one_epoch
from .search_setup import train_loaders
from .seeding import epoch_seed, seed_everything

__all__ = ['check_rank_inputs', 'run_rank']


def _retrain_epochs(cfg) -> int:
    """RANK.RETRAIN_EPOCHS, None meaning EPOCHS (both ranged when the config was loaded)."""
    epochs = cfg.RANK.RETRAIN_EPOCHS
    return int(cfg.EPOCHS if epochs is None else epochs)


def check_rank_inputs(cfg) -> None:
    if cfg.AMP:
        raise UserError('rank retrains in float32: set AMP False')
    check_path_eval_inputs(cfg, 'rank')
    refuse_existing_run(cfg.SAVE_PATH, cfg.MODEL, 'rank', 'rank.json')


def _retrain(cfg, path, image_size: int, num_classes: int, epochs: int, train_loader, val_loader, log) -> float:
    """Top-1 of ``path`` trained from scratch for ``epochs`` (the retrain recipe, its EMA ignored)."""
    rcfg = Config(cfg.to_dict())
    rcfg.set('EPOCHS', epochs)
    seed_everything(cfg.SEED)
    net = ChildNet(path, input_size=image_size, num_classes=num_classes, drop_rate=cfg.NET.DROPOUT_RATE,
                   drop_path_rate=cfg.NET.DROP_PATH_RATE, global_pool=cfg.NET.GP)
    training = build_training(rcfg, net, len(train_loader))
    training.ema = None
    updates = 0
    for epoch in range(epochs):
        seed_everything(epoch_seed(cfg.SEED, epoch))
        set_loader_epoch(train_loader, epoch)
        loss, updates = train_one_epoch(net, training, train_loader, epoch, updates, log, False, 0)
        training.scheduler.step(epoch + 1)
    net.eval()

    def run(images):
        with paddle.no_grad():
            return net(paddle.to_tensor(images)).numpy()
    return evaluate(run, val_loader, len(val_loader), show_progress=False)['top1']


def run_rank(cfg) -> Dict:
    check_rank_inputs(cfg)
    hypernet, ident = load_search_checkpoint(cfg, cfg.RESUME_PATH)   # its weights checked before any file
    out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'rank')
    log = setup_logging(os.path.join(out_dir, 'rank.log')).info
    seed_everything(cfg.SEED)
    image_size, num_classes = int(ident['image_size']), int(ident['num_classes'])
    path_flops = PathFlops(hypernet, int(ident['resolution']))
    limit, epochs = flops_limit(cfg), _retrain_epochs(cfg)
    try:
        sampler = PathSampler(ident['sta_num'], path_flops.flops, cfg.SUPERNET.FLOPS_MINIMUM, limit, seed=cfg.SEED)
        paths, seen = [], set()
        for _ in range(100 * cfg.RANK.NUM_PATHS):
            path, flops = sampler.sample()
            if str(path) not in seen:
                seen.add(str(path))
                paths.append((path, flops))
            if len(paths) == cfg.RANK.NUM_PATHS:
                break
    except (ValueError, RuntimeError) as err:
        raise UserError(f'rank: {err}') from None
    bn_loader, val_loader = fixed_loaders(cfg, image_size)
    train_loader, _ = train_loaders(cfg, image_size, 1)
    evaluator = PathEvaluator(hypernet, bn_loader, val_loader, cfg.INFERENCE, threads_beside_loader(cfg.WORKERS),
                              log)
    log(f'ranking {len(paths)} paths of {cfg.RESUME_PATH} (FLOPs [{cfg.SUPERNET.FLOPS_MINIMUM}, {limit}]M): '
        f'inherited weights (BN over {len(bn_loader)} batches) vs {epochs} epoch(s) from scratch, top-1 on '
        f'{len(val_loader.dataset)} val images')
    rows = []
    for i, (path, flops) in enumerate(paths):
        start = time.time()
        inherited = evaluator.score(path)['top1']
        retrained = _retrain(cfg, path, image_size, num_classes, epochs, train_loader, val_loader, log)
        rows.append(dict(arch=path, flops=flops, inherited_top1=inherited, retrained_top1=retrained))
        log(f'path {i + 1}/{len(paths)} {path} ({flops:.1f}M): inherited top-1 {inherited:.2f}, retrained '
            f'{retrained:.2f} ({time.time() - start:.0f}s)')
    x, y = [r['inherited_top1'] for r in rows], [r['retrained_top1'] for r in rows]
    tau, rho = kendall_tau(x, y), spearman_rho(x, y)
    flops_json = limit if math.isfinite(limit) else None   # JSON has no infinity
    result = dict(kendall_tau=None if np.isnan(tau) else tau, spearman_rho=None if np.isnan(rho) else rho,
                  num_paths=len(rows), retrain_epochs=epochs, flops_budget=[cfg.SUPERNET.FLOPS_MINIMUM, flops_json],
                  checkpoint=os.path.abspath(cfg.RESUME_PATH), method=ident['method'], paths=rows)
    write_json_atomic(result, os.path.join(out_dir, 'rank.json'))
    plot_xy(x, y, os.path.join(out_dir, 'rank.png'), 'inherited top-1 (%, BN recomputed)',
            f'retrained top-1 (%, {epochs} epochs)', f'{len(rows)} paths: Kendall tau {tau:.3f}, '
            f'Spearman rho {rho:.3f}')
    log(f'Kendall tau-b {tau:.3f}, Spearman rho {rho:.3f} over {len(rows)} paths; files in {out_dir}: '
        f'rank.json, rank.png, rank.log')
    return result
