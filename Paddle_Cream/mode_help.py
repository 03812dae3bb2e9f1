"""``cream MODE --help``: what the mode does, its config files, the keys most often set (with what each
accepts and its default, read from the declarations) and an example command."""
from typing import Dict, Tuple

__all__ = ['MODE_HELP', 'mode_help']

# mode -> (what it does, its config files, the keys most often set, an example's arguments after the mode)
MODE_HELP: Dict[str, Tuple[str, str, Tuple[str, ...], str]] = {
    'train': ('Cream (or SPOS) supernet search within a FLOPs and/or latency budget; writes best_arch.json.',
              'configs/demo/train.yaml (CPU quickstart), configs/train.yaml (the paper)',
              ('DATA_DIR', 'SAVE_PATH', 'MODEL', 'SUPERNET.METHOD', 'SUPERNET.FLOPS_MINIMUM', 'SUPERNET.FLOPS_MAXIMUM',
               'SUPERNET.LATENCY_TABLE', 'SUPERNET.LATENCY_MAXIMUM', 'SUPERNET.FOLLOW', 'EPOCHS', 'LR',
               'DATASET.BATCH_SIZE', 'NUM_GPU', 'AMP', 'AUTO_RESUME'),
              'configs/demo/train.yaml EPOCHS 2'),
    'retrain': ('Train one child network from scratch (a published one or a searched arch file).',
                'configs/demo/retrain.yaml, configs/retrain/retrain.yaml, configs/retrain/<14|43|...>.yaml',
                ('DATA_DIR', 'SAVE_PATH', 'MODEL', 'NET.SELECTION', 'NET.ARCH_FILE', 'NET.PRETRAINED', 'EPOCHS', 'LR',
                 'DATASET.BATCH_SIZE', 'NUM_GPU', 'AMP', 'AUTO_RESUME'),
                'configs/demo/retrain.yaml NET.ARCH_FILE best_arch.json'),
    'test': ('Evaluate a network on DATA_DIR/val (top-1/top-5, parity with the paper for published weights).',
             'configs/test.yaml, configs/demo/test.yaml',
             ('DATA_DIR', 'RESUME_PATH', 'NET.SELECTION', 'NET.ARCH_FILE', 'DATASET.NUM_CLASSES', 'INFERENCE',
              'DATASET.BATCH_SIZE', 'NUM_GPU'),
             'configs/test.yaml NET.SELECTION 14 RESUME_PATH 14.pth.tar'),
    'evolve': ('SPOS evolutionary search over a search checkpoint (RESUME_PATH; default the newest under SAVE_PATH).',
               'configs/demo/evolve.yaml, configs/evolve.yaml',
               ('RESUME_PATH', 'DATA_DIR', 'EVOLVE.FLOPS_LIMIT', 'EVOLVE.LATENCY_LIMIT', 'EVOLVE.LATENCY_TABLE',
                'EVOLVE.POPULATION', 'EVOLVE.GENERATIONS', 'INFERENCE'),
               'configs/demo/evolve.yaml RESUME_PATH output/<MMDD>-demo_search/checkpoint-last.pdparams'),
    'rank': ('Rank correlation of inherited against retrained top-1 over random paths of a search checkpoint.',
             'configs/demo/rank.yaml',
             ('RESUME_PATH', 'DATA_DIR', 'RANK.NUM_PATHS', 'RANK.RETRAIN_EPOCHS', 'EVOLVE.FLOPS_LIMIT'),
             'configs/demo/rank.yaml RANK.NUM_PATHS 5'),
    'export': ('Paddle Inference and ONNX files of a network, checked against the network it was made from.',
               'configs/export.yaml',
               ('NET.SELECTION', 'NET.ARCH_FILE', 'RESUME_PATH', 'DATASET.NUM_CLASSES', 'EXPORT.FORMAT',
                'EXPORT.OPSET', 'EXPORT.LATENCY_TABLE'),
               'configs/export.yaml NET.SELECTION 14 RESUME_PATH 14.pth.tar'),
    'predict': ('Classify an image, or every image in a folder (INPUT); predictions.json.',
                'configs/predict.yaml',
                ('INPUT', 'NET.SELECTION', 'NET.ARCH_FILE', 'RESUME_PATH', 'PREDICT.TOPK', 'INFERENCE'),
                'configs/predict.yaml INPUT photos/ NET.SELECTION 14 RESUME_PATH 14.pth.tar'),
    'latency': ("A latency table of the search's hypernetwork measured on this device, validated on random "
                'whole networks, for SUPERNET.LATENCY_TABLE.',
                'configs/latency.yaml',
                ('LATENCY.RUNTIME', 'LATENCY.THREADS', 'LATENCY.BATCH_SIZE', 'LATENCY.VALIDATE', 'LATENCY.ROUNDS',
                 'SUPERNET.FLOPS_MAXIMUM', 'DATASET.NUM_CLASSES', 'LATENCY.OUTPUT'),
                'configs/latency.yaml LATENCY.RUNTIME onnxruntime'),
}


def _default_text(value) -> str:
    return "''" if value == '' else str(value)


def mode_help(mode: str, prog: str = 'cream') -> str:
    """The help of ``mode`` (one of :data:`MODE_HELP`)."""
    from .config.defaults import declaration
    what, configs, keys, example = MODE_HELP[mode]
    width = max(len(k) for k in keys)
    lines = [f'usage: {prog} {mode} CONFIG [KEY VALUE ...]', '', what, f'CONFIG: {configs}', '',
             'keys most often set (KEY: what it accepts; default):']
    for key in keys:
        decl = declaration(key)
        lines.append(f'  {key.ljust(width)}  {decl.describe()}; default {_default_text(decl.default)}')
    lines += ['', 'Every key: Paddle_Cream/config/defaults.py. Example:', f'  {prog} {mode} {example}']
    return '\n'.join(lines)
