"""``tools/main.py evolve``: the SPOS evolutionary search on a trained supernet (docs/reference.md §9).

Loads the hypernetwork of a ``tools/main.py train`` checkpoint (RESUME_PATH), scores candidates with
:class:`~Paddle_Cream.engine.path_eval.PathEvaluator` (BN recomputed per path, fixed batches) inside
:class:`~Paddle_Cream.search.evolution.EvolutionSearch`, and writes ``best_arch.json`` (the format of the
Cream search's, ``method: 'spos'``), ``evolve_history.json`` and ``evolve.png``.

With a latency table (EVOLVE.LATENCY_TABLE, else SUPERNET.LATENCY_TABLE) every candidate's latency is
predicted by it, EVOLVE.LATENCY_LIMIT (ms, 0 none) joins FLOPS_LIMIT as a legality limit, and the
results carry ``latency_ms``, ``latency_limit`` and the table's record.
"""
import math
import os
import time
from typing import Any, Dict, Optional

from pimm.inference import threads_beside_loader

from ..search.evolution import EvolutionSearch
from ..search.flops_table import PathFlops
from .latency_inputs import TableFile, load_latency_table, require_table_fits
from .output import create_output_dir, refuse_existing_run, retrain_command, setup_logging, write_json_atomic
from .plots import plot_evolution
from .path_eval import PathEvaluator, check_path_eval_inputs, fixed_loaders, flops_limit, load_search_checkpoint
from .seeding import seed_everything
from .errors import UserError

__all__ = ['check_evolve_inputs', 'run_evolve']

def _latency_table(cfg, ident: Dict[str, Any]) -> Optional[TableFile]:
    """The table of EVOLVE.LATENCY_TABLE (else SUPERNET.LATENCY_TABLE), made for the checkpoint's
    hypernetwork, and reachable by EVOLVE.LATENCY_LIMIT; None without a table."""
    e = cfg.EVOLVE
    key = 'EVOLVE.LATENCY_TABLE' if e.LATENCY_TABLE else 'SUPERNET.LATENCY_TABLE'
    file = e.LATENCY_TABLE or cfg.SUPERNET.LATENCY_TABLE
    if not file:
        if e.LATENCY_LIMIT:
            raise UserError(f'EVOLVE.LATENCY_LIMIT {e.LATENCY_LIMIT} ms needs a latency table: set '
                            f'EVOLVE.LATENCY_TABLE to a latency_table.json of tools/main.py latency')
        return None
    table_file = load_latency_table(file, key)
    require_table_fits(table_file, ident['sta_num'], ident['resolution'], ident['num_classes'], cfg.NET.GP,
                       f' (the hypernetwork of {cfg.RESUME_PATH})')
    fastest, slowest = table_file.table.bounds()
    if e.LATENCY_LIMIT and e.LATENCY_LIMIT < fastest:
        raise UserError(f'EVOLVE.LATENCY_LIMIT {e.LATENCY_LIMIT} ms is below the fastest path of {file} '
                        f'({fastest:.3f} ms predicted; the slowest {slowest:.3f} ms): no path is legal')
    return table_file


def check_evolve_inputs(cfg) -> Optional[TableFile]:
    """RESUME_PATH a search checkpoint and the latency table fitting it (checked before anything is written;
    the EVOLVE numbers' ranges were checked when the config was loaded); returns the table."""
    state = check_path_eval_inputs(cfg, 'evolve')
    latency = _latency_table(cfg, state['search'])
    refuse_existing_run(cfg.SAVE_PATH, cfg.MODEL, 'evolve', 'best_arch.json')
    return latency


def _latency_entries(latency: Optional[TableFile], limit: float, best_ms: Optional[float]) -> Dict[str, Any]:
    """best_arch.json's and evolve_history.json's latency keys (None without a table, as train writes them)."""
    if latency is None:
        return dict(latency_ms=None, latency_limit=None, latency_table=None)
    entries = dict(latency_limit=limit or None, latency_table=latency.record())
    return entries if best_ms is None else dict(latency_ms=best_ms, **entries)


def _limits_line(flops: float, latency: Optional[TableFile], limit: float, resolution: int) -> str:
    line = f'FLOPs <= {flops}M at {resolution}px' if math.isfinite(flops) else 'no FLOPs limit'
    if latency is not None:
        line += f", latency <= {limit} ms" if limit else ', latency recorded'
        line += f' predicted by {latency.key} {latency.file} ({latency.table.describe()})'
    return line


def run_evolve(cfg) -> Dict:
    latency = check_evolve_inputs(cfg)
    hypernet, ident = load_search_checkpoint(cfg, cfg.RESUME_PATH)   # its weights checked before any file
    out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'evolve')
    log = setup_logging(os.path.join(out_dir, 'evolve.log')).info
    seed_everything(cfg.SEED)
    path_flops = PathFlops(hypernet, int(ident['resolution']))
    limit, latency_limit = flops_limit(cfg), cfg.EVOLVE.LATENCY_LIMIT
    bn_loader, val_loader = fixed_loaders(cfg, int(ident['image_size']))
    evaluator = PathEvaluator(hypernet, bn_loader, val_loader, cfg.INFERENCE, threads_beside_loader(cfg.WORKERS),
                              log)
    e = cfg.EVOLVE
    log(f"evolving {ident['method']} supernet {cfg.RESUME_PATH} (layers {ident['sta_num']}): population "
        f"{e.POPULATION}, top-{e.TOP_K}, {e.MUTATION_NUM} mutations (p {e.MUTATION_PROB}) + {e.CROSSOVER_NUM} "
        f"crossovers, {e.GENERATIONS} generations, "
        f"{_limits_line(limit, latency, latency_limit, int(ident['resolution']))}; each candidate: "
        f"BN over {len(bn_loader)} train batches, top-1 on {len(val_loader.dataset)} val images")
    try:
        search = EvolutionSearch(ident['sta_num'], path_flops.flops, limit, population=e.POPULATION,
                                 top_k=e.TOP_K, mutation_prob=e.MUTATION_PROB, mutation_num=e.MUTATION_NUM,
                                 crossover_num=e.CROSSOVER_NUM, generations=e.GENERATIONS, seed=cfg.SEED,
                                 latency_fn=latency.table.predict if latency else None,
                                 latency_limit=latency_limit or None)
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
        keys = 'EVOLVE.FLOPS_LIMIT' + (' / EVOLVE.LATENCY_LIMIT' if latency_limit else '')
        raise UserError(f'{keys}: {err}') from None
    arch_file = os.path.join(out_dir, 'best_arch.json')
    flops_json = limit if math.isfinite(limit) else None   # JSON has no infinity
    best_ms = latency.table.predict(best) if latency else None
    result = dict(arch=best, flops=path_flops.flops(best), top1=best_top1, top5=details[str(best)]['top5'],
                  resolution=int(ident['resolution']), flops_budget=[0, flops_json], method='spos',
                  checkpoint=os.path.abspath(cfg.RESUME_PATH), evaluated=len(search.scores),
                  retrain_command=retrain_command(cfg, arch_file), **_latency_entries(latency, latency_limit, best_ms))
    write_json_atomic(result, arch_file)
    write_json_atomic(dict(generations=history, flops_limit=flops_json, evaluated=len(search.scores),
                           seconds=time.time() - start, **_latency_entries(latency, latency_limit, None)),
                      os.path.join(out_dir, 'evolve_history.json'))
    plot_evolution(history, os.path.join(out_dir, 'evolve.png'), latency_limit=latency_limit or None)
    shown = '' if best_ms is None else \
        f", predicted latency {best_ms:.3f} ms{f' (limit {latency_limit} ms)' if latency_limit else ''}"
    log(f"chosen architecture {best}: {result['flops']:.1f} MFLOPs (limit {limit}){shown}, val top-1 "
        f"{best_top1:.2f} with inherited weights and recomputed BN; {len(search.scores)} candidates in "
        f"{time.time() - start:.0f}s")
    log(f'files in {out_dir}: best_arch.json, evolve_history.json, evolve.png, evolve.log')
    log(f"retrain it: {result['retrain_command']}")
    return result
