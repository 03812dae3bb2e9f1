"""``tools/main.py evolve``: the SPOS evolutionary search on a trained supernet (SPEC 9).

Loads the hypernetwork of a ``tools/main.py train`` checkpoint (RESUME_PATH), scores candidates with
:class:`~Paddle_Cream.engine.path_eval.PathEvaluator` (BN recomputed per path, fixed batches) inside
:class:`~Paddle_Cream.search.evolution.EvolutionSearch`, and writes ``best_arch.json`` (the format of the
Cream search's, ``method: 'spos'``), ``evolve_history.json`` and ``evolve.png``.
"""
import os
import time
from typing import Dict

from pimm.inference import threads_beside_loader

from ..search.evolution import EvolutionSearch
from ..search.flops_table import PathFlops
from .output import create_output_dir, refuse_existing_run, retrain_command, setup_logging, write_json_atomic
from .plots import plot_evolution
from .path_eval import PathEvaluator, check_path_eval_inputs, fixed_loaders, flops_limit, load_search_checkpoint
from .seeding import seed_everything
from .errors import UserError

__all__ = ['check_evolve_inputs', 'run_evolve']


def check_evolve_inputs(cfg) -> None:
    """RESUME_PATH a search checkpoint (checked before anything is written; the EVOLVE numbers' ranges
    were checked when the config was loaded)."""
    check_path_eval_inputs(cfg, 'evolve')
    refuse_existing_run(cfg.SAVE_PATH, cfg.MODEL, 'evolve', 'best_arch.json')


def run_evolve(cfg) -> Dict:
    check_evolve_inputs(cfg)
    hypernet, ident = load_search_checkpoint(cfg, cfg.RESUME_PATH)   # its weights checked before any file
    out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'evolve')
    log = setup_logging(os.path.join(out_dir, 'evolve.log')).info
    seed_everything(cfg.SEED)
    path_flops = PathFlops(hypernet, int(ident['resolution']))
    limit = flops_limit(cfg)
    bn_loader, val_loader = fixed_loaders(cfg, int(ident['image_size']))
    evaluator = PathEvaluator(hypernet, bn_loader, val_loader, cfg.INFERENCE, threads_beside_loader(cfg.WORKERS),
                              log)
    e = cfg.EVOLVE
    log(f"evolving {ident['method']} supernet {cfg.RESUME_PATH} (layers {ident['sta_num']}): population "
        f"{e.POPULATION}, top-{e.TOP_K}, {e.MUTATION_NUM} mutations (p {e.MUTATION_PROB}) + {e.CROSSOVER_NUM} "
        f"crossovers, {e.GENERATIONS} generations, FLOPs <= {limit}M at {ident['resolution']}px; each candidate: "
        f"BN over {len(bn_loader)} train batches, top-1 on {len(val_loader.dataset)} val images")
    try:
        search = EvolutionSearch(ident['sta_num'], path_flops.flops, limit, population=e.POPULATION,
                                 top_k=e.TOP_K, mutation_prob=e.MUTATION_PROB, mutation_num=e.MUTATION_NUM,
                                 crossover_num=e.CROSSOVER_NUM, generations=e.GENERATIONS, seed=cfg.SEED)
    except ValueError as err:
        raise UserError(f'EVOLVE: {err}') from None
    details = {}

    def score(path):
        metrics = evaluator.score(path)
        details[str(path)] = metrics
        return metrics['top1']
    start = time.time()
    try:
        best, best_top1, history = search.run(score, log)
    except RuntimeError as err:
        raise UserError(f'EVOLVE.FLOPS_LIMIT {limit}: {err}') from None
    arch_file = os.path.join(out_dir, 'best_arch.json')
    result = dict(arch=best, flops=path_flops.flops(best), top1=best_top1, top5=details[str(best)]['top5'],
                  resolution=int(ident['resolution']), flops_budget=[0, limit], method='spos',
                  checkpoint=os.path.abspath(cfg.RESUME_PATH), evaluated=len(search.scores),
                  retrain_command=retrain_command(cfg, arch_file))
    write_json_atomic(result, arch_file)
    write_json_atomic(dict(generations=history, flops_limit=limit, evaluated=len(search.scores),
                           seconds=time.time() - start), os.path.join(out_dir, 'evolve_history.json'))
    plot_evolution(history, os.path.join(out_dir, 'evolve.png'))
    log(f"chosen architecture {best}: {result['flops']:.1f} MFLOPs (limit {limit}), val top-1 {best_top1:.2f} "
        f"with inherited weights and recomputed BN; {len(search.scores)} candidates in {time.time() - start:.0f}s")
    log(f'files in {out_dir}: best_arch.json, evolve_history.json, evolve.png, evolve.log')
    log(f"retrain it: {result['retrain_command']}")
    return result
