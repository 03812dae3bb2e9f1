#!/usr/bin/env python
"""CPU deployment latency of the published Cream networks: every pimm runtime, ``INFERENCE auto`` and
PyTorch eager (timm), one forward pass of a fixed batch.

Each network is exported once (Paddle Inference files, ONNX, and an OpenVINO IR converted from the
ONNX with fp32 weights) into a temporary folder; every measurement is a fresh process that loads from
those files, so its load time (building the runtime plus the first call, where OpenVINO compiles
and oneDNN picks kernels) is reported apart from the steady-state latency. The sides alternate over
``--rounds`` (their order rotated each round); the median of the round medians is reported, with
each side's ratio to the fastest. ``auto`` is ``create_runner(model, size, 'auto', threads)`` exactly
as ``tools/main.py test`` builds it: its first call (export, checks, timing) counts as loading and
the calls after it are timed. Weights: random on both sides (Paddle seeded, timm's default init);
latency does not depend on weight values. Dygraph gets ``threads`` math threads through
``paddle.base.core.set_num_threads`` (``paddle.set_num_threads`` does not exist in Paddle 3.3); the
dygraph candidate inside ``auto`` keeps what ``tools/main.py`` gives it. Needs torch, timm,
onnxruntime, openvino, paddle2onnx. Example:

    python bench/deploy_latency.py --models 14 114 604 --batches 1 16 --threads 1 2 --out /tmp/deploy
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'helpers'))
os.environ.setdefault('GLOG_minloglevel', '2')

import numpy as np  # noqa: E402

MODELS = ('14', '43', '114', '287', '481', '604')
RUNTIMES = ('paddle', 'onnxruntime', 'openvino', 'dygraph')   # what auto chooses among
SIDES = RUNTIMES[:3] + ('openvino_ir',) + RUNTIMES[3:] + ('auto', 'torch')
OUT_FILES = ('deploy_latency.json', 'deploy_latency.md', 'deploy_latency.png')
WARMUP = {'dygraph': 2}          # untimed calls after the first (default 3)
MAX_REPEATS = {'dygraph': 10}    # dygraph is slow at 224 px: few timed calls


def input_size(model: str) -> int:
    with open(os.path.join(ROOT, 'Paddle_Cream', 'data', 'cream_published_models.json')) as f:
        return int(json.load(f)['models'][model]['input_size'])


def export(model: str, folder: str) -> dict:
    """Random-weight ``cream_<model>`` as Paddle weights, Paddle Inference files, ONNX and OpenVINO IR."""
    import paddle
    import openvino as ov
    import Paddle_Cream  # noqa: F401
    import pimm
    from pimm.inference import export_onnx, save_inference_model
    paddle.seed(0)
    net = pimm.create_model(f'cream_{model}').eval()
    paddle.save(net.state_dict(), os.path.join(folder, 'weights.pdparams'))
    start = time.perf_counter()
    graph, params = save_inference_model(net, os.path.join(folder, 'inference'), input_size(model))
    onnx = export_onnx(graph, params, os.path.join(folder, 'model.onnx'))
    exported = time.perf_counter()
    ov.save_model(ov.convert_model(onnx), os.path.join(folder, 'model.xml'), compress_to_fp16=False)
    return dict(export_s=exported - start, ir_convert_s=time.perf_counter() - exported)


class Files:
    """The exported files of one network, in the shape ``create_runtime`` reads (an ExportedModel's)."""

    def __init__(self, folder: str, model=None):
        self.model = model
        self.paddle_files = (next(os.path.join(folder, f'inference{e}') for e in ('.json', '.pdmodel')
                                  if os.path.isfile(os.path.join(folder, f'inference{e}'))),
                             os.path.join(folder, 'inference.pdiparams'))
        self.onnx_file = os.path.join(folder, 'model.onnx')


def paddle_model(model: str, folder: str):
    import paddle
    import Paddle_Cream  # noqa: F401
    import pimm
    net = pimm.create_model(f'cream_{model}')
    net.set_state_dict(paddle.load(os.path.join(folder, 'weights.pdparams')))
    return net.eval()


def build(side: str, model: str, folder: str, threads: int):
    """``run(images) -> logits`` of ``side``, loaded from the files in ``folder``."""
    if side == 'torch':
        import torch
        from timm_reference import build_timm_cream, published_table
        torch.set_num_threads(threads)
        net = build_timm_cream(published_table()[model]['arch']).eval()

        def run(x):
            with torch.inference_mode():
                return net(torch.from_numpy(x))
        return run
    from pimm.inference import OpenVinoRuntime, create_runner, create_runtime
    if side == 'openvino_ir':
        return OpenVinoRuntime(os.path.join(folder, 'model.xml'), threads)
    if side == 'auto':   # as tools/main.py test and predict build it
        return create_runner(paddle_model(model, folder), input_size(model), 'auto', threads,
                             lambda msg: print(msg, file=sys.stderr))
    if side == 'dygraph':
        from pimm.utils.threads import set_math_threads
        set_math_threads(threads)
        return create_runtime(side, Files(folder, paddle_model(model, folder)), threads)
    return create_runtime(side, Files(folder), threads)


def call_ms(run, x) -> float:
    start = time.perf_counter()
    out = run(x)
    np.asarray(out.numpy() if hasattr(out, 'numpy') else out)   # every side hands back a numpy array
    return 1e3 * (time.perf_counter() - start)


def measure(side: str, model: str, folder: str, batch: int, threads: int, repeats: int, seconds: float) -> dict:
    """One child's result: load time, then warm-up and timed calls of a fixed random batch."""
    start = time.perf_counter()
    if side == 'torch':
        import torch  # noqa: F401
        import timm_reference  # noqa: F401   (imports timm)
    else:
        import paddle  # noqa: F401
        import pimm.inference  # noqa: F401
    size = input_size(model)
    x = np.random.RandomState(0).randn(batch, 3, size, size).astype('float32')
    imported = time.perf_counter()
    run = build(side, model, folder, threads)
    first_ms = call_ms(run, x)
    result = dict(import_s=imported - start, load_s=time.perf_counter() - imported, first_call_ms=first_ms)
    warm = [call_ms(run, x) for _ in range(WARMUP.get(side, 3))]
    n = repeats or int(np.clip(round(seconds * 1e3 / np.median(warm)), 5, 1000))
    times = [call_ms(run, x) for _ in range(min(n, MAX_REPEATS.get(side, n)))]
    result.update(median_ms=float(np.median(times)), p10_ms=float(np.percentile(times, 10)),
                  p90_ms=float(np.percentile(times, 90)), repeats=len(times))
    if side == 'auto':
        result.update(chosen=run.name, report=run.report)   # parity, errors and first-batch timings
        run.close()   # its export folder
    return result


def in_child(side: str, model: str, folder: str, batch: int, threads: int, a) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), '--child', side, '--folder', folder, '--models', model,
           '--batches', str(batch), '--threads', str(threads), '--repeats', str(a.repeats),
           '--seconds', str(a.seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f'error: the {side} child failed (cream_{model}, batch {batch}, {threads} threads):\n'
                 + proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(rounds: dict) -> dict:
    """Per side: the median of the round medians (and of p10, p90, load), the rounds kept too."""
    out = {}
    for side, results in rounds.items():
        out[side] = {k: float(np.median([r[k] for r in results]))
                     for k in ('median_ms', 'p10_ms', 'p90_ms', 'load_s', 'first_call_ms')}
        out[side]['rounds_ms'] = [r['median_ms'] for r in results]
        out[side]['rounds_load_s'] = [r['load_s'] for r in results]
        if side == 'auto':
            out[side]['chosen'] = [r['chosen'] for r in results]
            out[side]['reports'] = [r['report'] for r in results]
    ms = {s: v['median_ms'] for s, v in out.items()}
    fastest = min(ms, key=ms.get)
    for side in out:
        out[side]['ratio'] = ms[side] / ms[fastest]
    best_runtime = min((s for s in RUNTIMES if s in ms), key=ms.get, default=None)
    summary = dict(sides=out, fastest=fastest, best_runtime=best_runtime)
    if 'auto' in ms and best_runtime:
        summary['auto_vs_best_runtime'] = ms['auto'] / ms[best_runtime]
    if 'paddle' in ms and 'onnxruntime' in ms:
        summary['paddle_vs_onnxruntime'] = ms['paddle'] / ms['onnxruntime']
    return summary


def _chosen(row: dict) -> str:
    """What auto served in each round: ``openvino`` or ``openvino 2/3, dygraph 1/3``."""
    chosen = row['sides']['auto']['chosen']
    counts = Counter(chosen).most_common()
    return chosen[0] if len(counts) == 1 else ', '.join(f'{n} {c}/{len(chosen)}' for n, c in counts)


def latency_table(rows: list, sides: list) -> str:
    head = ['model', 'px', 'batch', 'threads'] + [f'{s} ms' for s in sides] + ['fastest']
    extra = (['auto chose', 'auto / best runtime'] if 'auto' in sides else []) + \
        (['paddle / onnxruntime'] if {'paddle', 'onnxruntime'} <= set(sides) else [])
    lines = ['| ' + ' | '.join(head + extra) + ' |',
             '|' + '---|' * 4 + '---:|' * len(sides) + '---|' * (1 + len(extra))]
    for r in rows:
        cells = [f"cream_{r['model']}", str(r['input_size']), str(r['batch']), str(r['threads'])]
        cells += [f"{r['sides'][s]['median_ms']:.2f} ({r['sides'][s]['ratio']:.2f}x)" for s in sides]
        cells.append(r['fastest'])
        if 'auto' in sides:
            cells += [_chosen(r), f"{r['auto_vs_best_runtime']:.2f}x"]
        if 'paddle_vs_onnxruntime' in r:
            cells.append(f"{r['paddle_vs_onnxruntime']:.2f}x")
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def load_table(rows: list, sides: list) -> str:
    lines = ['| model | batch | threads | ' + ' | '.join(f'{s} load s' for s in sides) + ' |',
             '|---|---|---|' + '---:|' * len(sides)]
    for r in rows:
        lines.append(f"| cream_{r['model']} | {r['batch']} | {r['threads']} | "
                     + ' | '.join(f"{r['sides'][s]['load_s']:.2f}" for s in sides) + ' |')
    return '\n'.join(lines)


def report(rows: list, sides: list, meta: dict) -> str:
    return (f"{meta['cores']} CPU cores; median of {meta['rounds']} interleaved rounds (one fresh process per "
            f"side per round) of each child's median latency; (x) is the ratio to the fastest side.\n\n"
            + latency_table(rows, sides) + '\n\nLoad: building the runtime from the exported files plus the '
            'first call (OpenVINO compiles, oneDNN picks kernels; auto: export, checks and timing).\n\n'
            + load_table(rows, sides) + '\n\nExport per model (s): '
            + ', '.join(f"cream_{m}: export {e['export_s']:.1f}, ONNX to IR {e['ir_convert_s']:.1f}"
                        for m, e in meta['exports'].items()) + '\n')


def plot(rows: list, sides: list, file: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(rows)), 8), sharex=True)
    width, xs = 0.8 / len(sides), np.arange(len(rows))
    for i, side in enumerate(sides):
        axes[0].bar(xs + i * width, [r['sides'][side]['ratio'] for r in rows], width, label=side)
        axes[1].bar(xs + i * width, [r['sides'][side]['load_s'] for r in rows], width, label=side)
    axes[0].set(yscale='log', ylabel='latency / fastest side', title='CPU latency, median of rounds')
    axes[0].axhline(1.1, color='grey', lw=0.8, ls='--')
    axes[1].set(yscale='log', ylabel='load + first call (s)')
    axes[1].set_xticks(xs + 0.4 - width / 2)
    axes[1].set_xticklabels([f"{r['model']}@{r['input_size']}\nb{r['batch']} t{r['threads']}" for r in rows])
    axes[0].legend(ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(file, dpi=100)
    plt.close(fig)


def write_outputs(out: str, rows: list, sides: list, meta: dict, text: str) -> None:
    from Paddle_Cream.engine.output import write_json_atomic
    from pimm.utils.atomic import atomic_path
    write_json_atomic(dict(meta=meta, rows=rows), os.path.join(out, OUT_FILES[0]))
    with atomic_path(os.path.join(out, OUT_FILES[1])) as tmp, open(tmp, 'w') as f:
        f.write(text)
    plot(rows, sides, os.path.join(out, OUT_FILES[2]))


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS)
    p.add_argument('--batches', nargs='+', type=int, default=[1, 16])
    p.add_argument('--threads', nargs='+', type=int, default=sorted({1, os.cpu_count() or 1}))
    p.add_argument('--rounds', type=int, default=3, help='interleaved rounds; the median is reported')
    p.add_argument('--repeats', type=int, default=0, help='timed calls per child (0: about --seconds of them)')
    p.add_argument('--seconds', type=float, default=1.0, help='timed seconds per child when --repeats is 0')
    p.add_argument('--skip', nargs='*', default=[], choices=SIDES, help='sides not measured, e.g. dygraph')
    p.add_argument('--out', help='folder for deploy_latency.json, .md and .png (existing files are refused)')
    p.add_argument('--child', choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument('--folder', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse(argv)
    if a.child:
        print(json.dumps(measure(a.child, a.models[0], a.folder, a.batches[0], a.threads[0], a.repeats,
                                 a.seconds)))
        return 0
    used = [f for f in OUT_FILES if a.out and os.path.exists(os.path.join(a.out, f))]
    if used:
        sys.exit(f"error: {', '.join(os.path.join(a.out, f) for f in used)} exists: give another --out")
    sides = [s for s in SIDES if s not in a.skip]
    start, rows = time.time(), []
    meta = dict(cores=os.cpu_count(), rounds=a.rounds, argv=sys.argv[1:] if argv is None else list(argv),
                sides=sides, exports={})
    for model in a.models:
        with tempfile.TemporaryDirectory(prefix=f'deploy_{model}_') as folder:
            meta['exports'][model] = export(model, folder)
            for batch in a.batches:
                for threads in a.threads:
                    rounds = {side: [] for side in sides}
                    for r in range(a.rounds):
                        for side in sides[r % len(sides):] + sides[:r % len(sides)]:
                            rounds[side].append(in_child(side, model, folder, batch, threads, a))
                        print(f'cream_{model} batch {batch} threads {threads} round {r + 1}/{a.rounds}: '
                              + ', '.join(f"{s} {v[-1]['median_ms']:.2f}" for s, v in rounds.items()) + ' ms',
                              flush=True)
                    rows.append(dict(model=model, input_size=input_size(model), batch=batch, threads=threads,
                                     **summarise(rounds)))
    meta['seconds'] = time.time() - start
    text = report(rows, sides, meta) + f"\nWall time {meta['seconds'] / 60:.1f} min.\n"
    print('\n' + text)
    if a.out:
        write_outputs(a.out, rows, sides, meta, text)
        print(f"files in {a.out}: {', '.join(OUT_FILES)}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
