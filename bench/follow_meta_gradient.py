#!/usr/bin/env python
"""How much each official meta-update switch changes the meta gradient, on a finished search's own state.

From a search run folder (its ``checkpoint-last.pdparams``: supernet weights, board, meta layer; and its
``train_config.yaml``), the meta-layer gradient of one meta update on the first training batch is computed with
``FOLLOW corrected``, then with each switch that acts on it set to the official value alone, then with
``FOLLOW official``; each from a fresh copy of the checkpoint. Printed and written to ``meta_gradient.json`` /
``.md`` in ``--out``: the gradient's norm, its relative difference from the corrected one
(``|g - g_corrected| / |g_corrected|``) and their cosine. The student path is the board's best entry's, the
teacher the one the meta layer picks for it. The table in docs/search.md:

    python bench/follow_meta_gradient.py --run ./output/follow_demo/runs/<MMDD>-corrected_search --out ./output/mg
"""
import argparse
import os
import sys
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('GLOG_minloglevel', '2')

import numpy as np  # noqa: E402

CASES = [('corrected', {}), ('MATCH_WEIGHT last_entry', {'MATCH_WEIGHT': 'last_entry'}),
         ('META_STEP official', {'META_STEP': 'official'}), ('META_CHAIN stem', {'META_CHAIN': 'stem'}),
         ('META_CLIP ignored', {'META_CLIP': 'ignored'}), ('META_VAL_LOSS train', {'META_VAL_LOSS': 'train'}),
         ('META_BN running', {'META_BN': 'running'}), ('FOLLOW official', None)]


def _meta_gradient(run: str, cfg, overrides: Optional[Dict[str, str]], batch) -> np.ndarray:
    """The meta-layer gradient of one meta update from a fresh load of the run's checkpoint."""
    import paddle
    from pimm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from pimm.optim import create_optimizer
    from Paddle_Cream.engine.train_state import load_train_state
    from Paddle_Cream.models.hypernet import HyperNet
    from Paddle_Cream.search import MetaMatcher, PrioritizedBoard
    from Paddle_Cream.search.behaviour import resolve_behaviour
    from Paddle_Cream.search.supernet_step import SearchSettings, SupernetStep
    state = load_train_state(os.path.join(run, 'checkpoint-last.pdparams'))
    search = state['search']
    net = HyperNet(search['sta_num'], search['num_classes'], resolution=search['image_size'])
    net.set_state_dict(state['state_dict'])
    net.train()
    board = PrioritizedBoard(cfg.SUPERNET.POOL_SIZE)
    board.load_state_dict(state['board'])
    matcher = MetaMatcher(search['num_classes'], cfg.SUPERNET.SLICE)
    matcher.set_state_dict(state['meta_layer'])
    behaviour = resolve_behaviour('official') if overrides is None else resolve_behaviour('corrected', overrides)
    optimizer = create_optimizer(net, opt='sgd', lr=cfg.LR, weight_decay=cfg.WEIGHT_DECAY, momentum=cfg.MOMENTUM,
                                 filter_bias_and_bn=True, fused_units=net.units())
    meta_optimizer = None
    if behaviour.meta_optimizer == 'main':
        meta_optimizer = create_optimizer(matcher, opt='sgd', lr=cfg.META_LR, weight_decay=0.,
                                          momentum=cfg.MOMENTUM, filter_bias_and_bn=False)
    settings = SearchSettings(method='cream', pick_method='meta', meta_sta_epoch=0, update_iter=10 ** 9,
                              slice_size=cfg.SUPERNET.SLICE, meta_lr=cfg.META_LR, behaviour=behaviour)
    step = SupernetStep(net, optimizer, None, settings, LabelSmoothingCrossEntropy(cfg.AUGMENTATION.SMOOTHING),
                        SoftTargetCrossEntropy(), board, matcher, meta_optimizer=meta_optimizer)
    captured = []
    compute = matcher.meta_gradient

    def spy(*args, **kwargs):
        grads, info = compute(*args, **kwargs)
        captured.append(np.concatenate([g.numpy().ravel() for g in grads]))
        return grads, info
    matcher.meta_gradient = spy
    path = board.best().path
    paddle.seed(cfg.SEED)
    entry, _ = step._pick(path)
    x, y = batch
    step.meta_update(x, y, path, cfg.LR, entry)
    return captured[0]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--run', required=True, help="a search's run folder (checkpoint-last.pdparams, train_config.yaml)")
    p.add_argument('--out', required=True, help='a folder for meta_gradient.json and .md')
    p.add_argument('--data-dir', default='', help="DATA_DIR (default: the run's)")
    a = p.parse_args(argv)
    for name in ('checkpoint-last.pdparams', 'train_config.yaml'):
        if not os.path.isfile(os.path.join(a.run, name)):
            p.error(f'--run {a.run}: no {name} there (a search run folder holds both)')
    from Paddle_Cream.config import load_config
    from Paddle_Cream.engine.output import write_json_atomic
    from Paddle_Cream.engine.search_setup import train_loaders
    from Paddle_Cream.engine.seeding import seed_everything
    cfg = load_config(os.path.join(a.run, 'train_config.yaml'), ['DATA_DIR', a.data_dir] if a.data_dir else [])
    seed_everything(cfg.SEED)
    import paddle
    images, labels = next(iter(train_loaders(cfg, cfg.DATASET.IMAGE_SIZE or 32, 1)[0]))
    batch = [t if isinstance(t, paddle.Tensor) else paddle.to_tensor(t) for t in (images, labels)]
    grads = {label: _meta_gradient(a.run, cfg, overrides, batch) for label, overrides in CASES}
    base = grads['corrected']
    rows = [dict(case=label, norm=float(np.linalg.norm(g)),
                 relative_difference=float(np.linalg.norm(g - base) / np.linalg.norm(base)),
                 cosine=float(g @ base / (np.linalg.norm(g) * np.linalg.norm(base))))
            for label, g in grads.items()]
    lines = ['| meta update | gradient norm | relative difference from corrected | cosine |', '|---|---:|---:|---:|']
    lines += [f"| {r['case']} | {r['norm']:.4g} | {r['relative_difference']:.3f} | {r['cosine']:.3f} |" for r in rows]
    os.makedirs(a.out, exist_ok=True)
    write_json_atomic(dict(run=os.path.abspath(a.run), rows=rows), os.path.join(a.out, 'meta_gradient.json'))
    with open(os.path.join(a.out, 'meta_gradient.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
