"""``tools/main.py test``: evaluate a network on ``DATA_DIR/val`` and report paper parity."""
import os
from typing import Dict

import Paddle_Cream  # noqa: F401  (registers the cream_* models)
from pimm.data import DatasetError, ImageDataset
from pimm.inference import create_runner, threads_beside_loader
from pimm.utils import format_complexity, model_complexity

from pimm.utils.distributed import init_distributed, is_main_process
from .demo_data import prepare_demo_data
from .errors import UserError, require_inference
from .evaluate import eval_loader, evaluate, require_scored
from .model_builder import build_model, load_weights, require_weights
from .output import create_output_dir, setup_logging, write_json_atomic

__all__ = ['PARITY_TOLERANCE', 'is_parity', 'parity_line', 'check_test_inputs', 'run_test']

PARITY_TOLERANCE = 0.3  # top-1 points


def is_parity(top1: float, paper_top1: float) -> bool:
    """|top-1 - paper| <= 0.3 points (with slack for float noise: 54.1 - 53.8 is 0.3000000000000043)."""
    return abs(top1 - paper_top1) <= PARITY_TOLERANCE + 1e-9


def parity_line(name: str, top1: float, paper: Dict[str, float]) -> str:
    """``'Cream-14 top-1 53.79 (paper 53.8, diff -0.01): PARITY'`` (no paper figure: no verdict)."""
    if 'top1' not in paper:
        return f'{name} top-1 {top1:.2f}'
    diff = top1 - paper['top1']
    verdict = 'PARITY' if is_parity(top1, paper['top1']) else 'MISMATCH'
    return f"{name} top-1 {top1:.2f} (paper {paper['top1']}, diff {diff:+.2f}): {verdict}"


def check_test_inputs(cfg) -> str:
    """Fail fast, before any process starts, on what a user can fix; returns the val folder."""
    require_weights(cfg, 'test')
    require_inference(cfg.INFERENCE)
    prepare_demo_data(cfg)  # before any process is launched: one writer
    val_dir = os.path.join(cfg.DATA_DIR, cfg.DATASET.VAL_SPLIT)
    if not os.path.isdir(val_dir):
        raise UserError(f"validation folder '{val_dir}' not found (DATA_DIR/{cfg.DATASET.VAL_SPLIT})")
    return val_dir


def run_test(cfg) -> Dict[str, object]:
    """Evaluate and write ``test.log`` and ``results.json`` in ``SAVE_PATH/<MMDD>-<MODEL>/``."""
    val_dir = check_test_inputs(cfg)
    world = init_distributed()
    main = is_main_process()
    # the weights and the data are checked before the run folder is made
    early = []
    model, info = build_model(cfg)
    macs, params = model_complexity(model, info.input_size)
    load_weights(model, cfg.RESUME_PATH, cfg.NET.EMA.USE, early.append)
    try:
        dataset = ImageDataset(val_dir, skip_corrupt=cfg.SKIP_CORRUPT)
    except DatasetError as e:
        raise UserError(str(e)) from None
    if len(dataset.classes) > cfg.DATASET.NUM_CLASSES:
        raise UserError(f'{val_dir} has {len(dataset.classes)} class folders but DATASET.NUM_CLASSES is '
                        f'{cfg.DATASET.NUM_CLASSES}')
    out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'test', write=main)
    log = setup_logging(os.path.join(out_dir, 'test.log') if main else None, main).info
    log(f'{info.name} @{info.input_size}px: {format_complexity(macs, params)}')
    for line in early:
        log(line)
    batch_size = cfg.DATASET.BATCH_SIZE * cfg.DATASET.VAL_BATCH_MUL
    loader = eval_loader(cfg, dataset, info.input_size, batch_size, cfg.WORKERS, distributed=world > 1)
    runner = create_runner(model, info.input_size, cfg.INFERENCE, threads_beside_loader(cfg.WORKERS, world), log)
    log(f'evaluating {len(dataset)} images of {len(dataset.classes)} classes in {val_dir} '
        f'({world} process(es), INFERENCE {cfg.INFERENCE}, batch {batch_size})')
    try:
        metrics = evaluate(runner, loader, len(loader), show_progress=main)
    finally:
        runner.close()
    require_scored(metrics, val_dir)

    results = dict(model=info.name, arch=info.path, input_size=info.input_size, params=params, macs=macs,
                   weights=os.path.abspath(cfg.RESUME_PATH), processes=world, inference=runner.name,
                   inference_check=runner.report, **metrics)
    if info.paper:
        results.update(paper_top1=info.paper['top1'], paper_top5=info.paper['top5'],
                       top1_diff=metrics['top1'] - info.paper['top1'],
                       top5_diff=metrics['top5'] - info.paper['top5'],
                       parity=is_parity(metrics['top1'], info.paper['top1']))
    if main:
        log(f"images {metrics['images']} (skipped corrupt: {metrics['skipped']}), top-1 {metrics['top1']:.2f}, "
            f"top-5 {metrics['top5']:.2f}, loss {metrics['loss']:.4f}, {metrics['images_per_sec']:.1f} images/s")
        write_json_atomic(results, os.path.join(out_dir, 'results.json'))
        log(parity_line(info.name, metrics['top1'], info.paper))
        skipped = f" ({metrics['skipped']} unreadable images skipped, SKIP_CORRUPT)" if metrics['skipped'] else ''
        log(f'results in {out_dir}{skipped}')
    return results
