"""``tools/main.py export``: the network as a Paddle Inference model and as ONNX, parity-checked.

The run folder ``SAVE_PATH/<MMDD>-<MODEL>/`` receives ``inference.json`` + ``inference.pdiparams``
(``paddle.jit.save``, dynamic batch, input ``x`` NCHW float32), ``model.onnx`` (``paddle2onnx``) and
``export.json``: the preprocessing a deployer must reproduce, the class count and labels (as ``predict``
gives them), params and MACs, and the parity check every export runs. That check feeds a fixed
random batch and a few real images (from ``DATA_DIR/<VAL_SPLIT>`` when it exists) to every runtime
that reads the files (:mod:`pimm.inference`: Paddle Inference, and ONNX Runtime and OpenVINO on
``model.onnx``, each where installed) and compares their logits with the dygraph network's; above
:data:`PARITY_RTOL` the export fails and leaves no files (everything is written in a temporary folder
and moved into the run folder last). No OpenVINO IR is written: see docs/deploy.md, *Exporting*.

With EXPORT.LATENCY_TABLE the parity-checked network is also timed as that latency table was measured (its
runtime, threads, batch size and resolution; LATENCY.WARMUP/REPEATS/ROUNDS/PIN the schedule) and, when it
is a path of the table's layers, its latency predicted by the table: ``export.json``'s ``latency``, with
a warning when the two differ by more than :data:`LATENCY_WARN_PERCENT`.
"""
import importlib
import math
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

# PARITY_RTOL: max |exported - dygraph| / max |dygraph| over a batch of logits, the tolerance INFERENCE uses
from pimm.inference import PARITY_RTOL, OnnxExportError, OnnxRuntime, OpenVinoRuntime, PaddleInferenceRuntime, \
    export_onnx, missing_packages, relative_difference, save_inference_model
from pimm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, DatasetError, ImageDataset, create_transform
from pimm.utils import format_complexity, model_complexity
from pimm.utils.atomic import atomic_path

from ..search.latency_build import measure_model
from .distributed import on_cpu
from .errors import UserError
from .labels import class_labels
from .latency_inputs import TableFile, load_latency_table, require_table_runtime
from .model_builder import ModelInfo, build_model, load_weights, require_weights
from .output import create_output_dir, refuse_existing_run, setup_logging, write_json_atomic

__all__ = ['PARITY_RTOL', 'ONNX_RUNTIMES', 'LATENCY_WARN_PERCENT', 'check_export_inputs', 'run_export',
           'preprocessing']

ONNX_RUNTIMES = ('onnxruntime', 'openvino')   # the ONNX file is checked by each of these that is installed
PREFIX = 'inference'         # the file names PaddleClas and Paddle 3's own tools use
RANDOM_BATCH, REAL_IMAGES, PARITY_SEED = 4, 8, 0
LATENCY_WARN_PERCENT = 10.0   # predicted vs measured latency beyond this: the table may not describe this machine


def _onnx_checkers() -> List[str]:
    return [name for name in ONNX_RUNTIMES if not missing_packages(name)]


def check_export_inputs(cfg) -> Optional[TableFile]:
    """Fail fast, before anything is built, on what a user can fix; returns EXPORT.LATENCY_TABLE's table."""
    require_weights(cfg, 'export')
    if cfg.EXPORT.FORMAT in ('onnx', 'both'):
        missing = [p for p in ('paddle2onnx',) if importlib.util.find_spec(p) is None]
        if not missing and not _onnx_checkers():
            missing = ['onnxruntime']   # the ONNX file is never written unchecked
        if missing:
            raise UserError(f"EXPORT.FORMAT {cfg.EXPORT.FORMAT} needs the package(s) {', '.join(missing)}: "
                            f"pip install {' '.join(missing)}, or every runtime: pip install -r "
                            f"requirements-deploy.txt (or EXPORT.FORMAT paddle)")
    latency = None
    if cfg.EXPORT.LATENCY_TABLE:
        latency = load_latency_table(cfg.EXPORT.LATENCY_TABLE, 'EXPORT.LATENCY_TABLE')
        require_table_runtime(latency)
    refuse_existing_run(cfg.SAVE_PATH, cfg.MODEL, 'export', 'export.json')
    return latency


def preprocessing(cfg, input_size: int) -> Dict[str, object]:
    """What the exported model expects, as ``create_transform(is_training=False)`` does it."""
    crop_pct = cfg.DATASET.CROP_PCT
    return dict(input_name='x', layout='NCHW', dtype='float32', color='RGB', input_size=input_size,
                resize_shorter_side=int(math.floor(input_size / crop_pct)), center_crop=input_size,
                crop_pct=crop_pct, interpolation=cfg.DATASET.INTERPOLATION, scale=1 / 255,
                mean=list(IMAGENET_DEFAULT_MEAN), std=list(IMAGENET_DEFAULT_STD))


def _real_images(cfg, input_size: int, log) -> Optional[np.ndarray]:
    """Up to REAL_IMAGES images spread over ``DATA_DIR/<VAL_SPLIT>`` through the eval transform."""
    folder = os.path.join(cfg.DATA_DIR, cfg.DATASET.VAL_SPLIT)
    if not os.path.isdir(folder):
        log(f'no {folder}: the parity check uses the random batch only')
        return None
    try:
        dataset = ImageDataset(folder, skip_corrupt=True)
    except DatasetError as e:
        log(f'{folder} gives no images ({e}): the parity check uses the random batch only')
        return None
    transform = create_transform(input_size, is_training=False, interpolation=cfg.DATASET.INTERPOLATION,
                                 crop_pct=cfg.DATASET.CROP_PCT)
    dataset.transform = transform
    picks = np.linspace(0, len(dataset) - 1, min(REAL_IMAGES, len(dataset))).round().astype(int)
    samples = [dataset[int(i)] for i in picks]
    images = [image for image, target in samples if target >= 0]   # -1: an unreadable image, skipped
    return np.stack(images).astype(np.float32) if images else None


def parity_check(model: nn.Layer, runners: Dict[str, Callable], batches: Dict[str, np.ndarray]
                 ) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Logits of every exported runner against the dygraph network on every batch."""
    model.eval()
    report: Dict[str, Dict[str, Dict[str, float]]] = {}
    for batch_name, x in batches.items():
        with paddle.no_grad():
            expected = model(paddle.to_tensor(x)).numpy().astype(np.float64)
        for runner_name, run in runners.items():
            report.setdefault(runner_name, {})[batch_name] = dict(images=len(x),
                                                                  **relative_difference(run(x), expected))
    return report


def _worst(report) -> Tuple[float, str]:
    return max((d['max_rel'], f'{runner} on the {batch}') for runner, per in report.items()
               for batch, d in per.items())


def _export_files(cfg, model: nn.Layer, info: ModelInfo, work: str, log) -> Dict[str, object]:
    files, runners = [], {}
    graph, params = save_inference_model(model, os.path.join(work, PREFIX), info.input_size)
    if cfg.EXPORT.FORMAT in ('paddle', 'both'):
        files += [os.path.basename(graph), os.path.basename(params)]
        runners['paddle'] = PaddleInferenceRuntime(graph, params)
    if cfg.EXPORT.FORMAT in ('onnx', 'both'):
        onnx_file = os.path.join(work, 'model.onnx')
        try:
            export_onnx(graph, params, onnx_file, cfg.EXPORT.OPSET)
        except OnnxExportError as e:
            raise UserError(str(e)) from None
        files.append('model.onnx')
        readers = {'onnxruntime': OnnxRuntime, 'openvino': OpenVinoRuntime}
        runners.update({name: readers[name](onnx_file) for name in _onnx_checkers()})
    rng = np.random.RandomState(PARITY_SEED)
    batches = {'random batch': rng.standard_normal((RANDOM_BATCH, 3, info.input_size, info.input_size))
               .astype(np.float32)}
    real = _real_images(cfg, info.input_size, log)
    if real is not None:
        batches['real images'] = real
    report = parity_check(model, runners, batches)
    for runner, per in report.items():
        for batch, d in per.items():
            log(f"parity {runner} vs dygraph, {batch} ({d['images']} images): max abs {d['max_abs']:.2e}, "
                f"max relative {d['max_rel']:.2e}")
    worst, where = _worst(report)
    if not worst <= PARITY_RTOL:   # also catches NaN
        raise UserError(f'export parity check failed: {where}, max relative difference {worst:.2e} > '
                        f'{PARITY_RTOL:g}; nothing was written')
    return dict(files=files, parity=dict(tolerance_rel=PARITY_RTOL, max_rel=worst, seed=PARITY_SEED,
                                         report=report))


def _latency(cfg, model: nn.Layer, info: ModelInfo, latency: TableFile, log) -> Dict[str, Any]:
    """export.json's ``latency``: the network timed with the table's settings, and predicted by the table
    when it is a path of the table's layers."""
    table = latency.table
    if info.input_size != table.resolution:
        log(f"latency: timed at the table's {table.resolution}px, the input size its predictions are for (this "
            f"export's is {info.input_size}px)")
    lat = cfg.LATENCY
    timing = measure_model(model, table, warmup=lat.WARMUP, repeats=lat.REPEATS, rounds=lat.ROUNDS, pin=lat.PIN)
    layers = [len(stage) for stage in info.path[1:-1]]
    predicted, reason = None, None
    if layers == table.sta_num:
        predicted = table.predict(info.path)
    else:
        reason = f'the network has layers {layers}, the table {table.sta_num}: no prediction'
    measured = table.measured_ms(timing)   # the statistic the table's predictions are made of
    error = None if predicted is None else 100 * (predicted - measured) / measured
    shown = reason if predicted is None else f'predicted {predicted:.3f} ms ({error:+.1f}%)'
    log(f'latency ({table.describe()}): measured {measured:.3f} ms ({table.statistic[:-3]}; median '
        f'{timing.median_ms:.3f}, p10 {timing.p10_ms:.3f}, p90 {timing.p90_ms:.3f}); {shown}')
    if error is not None and abs(error) > LATENCY_WARN_PERCENT:
        log(f'warning: the latency table predicts {predicted:.3f} ms, the exported network measures '
            f'{measured:.3f} ms ({error:+.1f}%, beyond {LATENCY_WARN_PERCENT:g}%): the table may not '
            f'describe this machine or its load now; build it again with tools/main.py latency')
    record = latency.record()
    return dict(table=record.pop('file'), **record, predicted_ms=predicted, measured_ms=measured,
                statistic=table.statistic, timing=timing.to_dict(), error_percent=error, reason=reason)


def run_export(cfg) -> Dict[str, object]:
    """Export, check parity, then move the files into the run folder; returns ``export.json``'s content.

    Runs on the CPU, GPU or not: the reference logits then come from float32 CPU kernels, as the CPU
    predictor's and ONNX Runtime's do (a GPU's TF32 convolutions alone would differ by more than 1e-4)."""
    latency = check_export_inputs(cfg)
    with on_cpu():
        return _run_export(cfg, latency)


def _run_export(cfg, latency: Optional[TableFile]) -> Dict[str, object]:
    console = setup_logging(None).info
    lines: List[str] = []

    def log(msg: str) -> None:   # export.log is written with the files, once the export has passed
        console(msg)
        lines.append(f"{time.strftime('%m-%d %H:%M:%S')} {msg}")
    model, info = build_model(cfg)
    load_weights(model, cfg.RESUME_PATH, cfg.NET.EMA.USE, log)
    macs, params = model_complexity(model, info.input_size)
    log(f'{info.name} @{info.input_size}px: {format_complexity(macs, params)}')
    with tempfile.TemporaryDirectory(prefix='cream_export_') as work:
        result = _export_files(cfg, model, info, work, log)
        if latency is not None:
            result['latency'] = _latency(cfg, model, info, latency, log)
        labels, source, note = class_labels(cfg.RESUME_PATH, cfg.DATASET.NUM_CLASSES)
        if note:
            log(note)
        result = dict(model=info.name, arch=info.path, num_classes=cfg.DATASET.NUM_CLASSES, labels=source,
                      class_names=labels, params=params,
                      macs=macs, weights=os.path.abspath(cfg.RESUME_PATH), ema=cfg.NET.EMA.USE,
                      preprocessing=preprocessing(cfg, info.input_size), opset=cfg.EXPORT.OPSET,
                      versions=_versions(cfg.EXPORT.FORMAT), **result)
        out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'export')
        log(f"exported {info.name} ({', '.join(result['files'])}); parity max relative difference "
            f"{result['parity']['max_rel']:.2e} <= {PARITY_RTOL:g}; files in {out_dir}")
        for name in result['files']:   # a reader never sees half a model
            with atomic_path(os.path.join(out_dir, name)) as tmp:
                shutil.copyfile(os.path.join(work, name), tmp)
    with atomic_path(os.path.join(out_dir, 'export.log')) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    write_json_atomic(result, os.path.join(out_dir, 'export.json'))   # last: it marks a finished export
    return result


def _versions(fmt: str) -> Dict[str, str]:
    versions = {'paddlepaddle': paddle.__version__}
    if fmt in ('onnx', 'both'):
        for name in ('paddle2onnx',) + tuple(_onnx_checkers()):
            versions[name] = getattr(importlib.import_module(name), '__version__', 'unknown').split('-')[0]
    return versions
