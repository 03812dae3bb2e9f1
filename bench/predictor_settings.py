"""Paddle Inference (``paddle.inference``) CPU settings, timed against ONNX Runtime on the same export.

    python bench/predictor_settings.py [--models 14 114 604] [--batches 1 16] [--threads 1 2] [--rounds 3]
        [--variants current "plain activations" ...] [--seconds 0.5] [--overhead]

Each model (``cream_<n>``, random weights, fixed seed) is exported once to a temp folder, in a
subprocess: the PIR export ``save_inference_model`` writes (``.json``; activations as Paddle's single
ops ``swish`` / ``hardsigmoid``, which the oneDNN passes fuse into the convolutions), the same weights
exported with the activations written out (``x * sigmoid(x)``, ``relu6(x + 3) / 6``, as dygraph runs
them: "plain activations", what the export was before), the network as an old-IR program
(``.pdmodel``, built in static mode under ``OldIrGuard``; Paddle 3.3's ``jit.save`` no longer writes
one, and it cannot build ``F.sigmoid`` there), the ONNX file of the PIR export, and dygraph logits of
fixed inputs.
Then every variant runs in its own fresh process per (model, threads, round), rounds interleaved:
warm-up, then each batch is timed for ``--seconds`` (at least 3 runs), median ms; the table holds the
median over rounds and the ratio to ONNX Runtime. ``rel`` is the largest max|out - ref| / max|ref| over
the batches against dygraph (flagged when above 1e-4). ``--overhead`` also times chains of 1 and 100
1x1 convolutions (8 channels, 4x4) to separate the per-op cost of the predictor from kernel time.
Temporary files (and the OpenVINO engine's cache) stay in the temp folder; run from anywhere.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SCRIPT = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(SCRIPT))
REL_LIMIT = 1e-4

# name: (export, config calls after the current ones, environment, run API)
VARIANTS = {
    'current': ('pir', [], {}, 'handles'),
    'onednn off': ('pir', ['disable_mkldnn'], {}, 'handles'),
    'ir_optim off': ('pir', [('switch_ir_optim', False)], {}, 'handles'),
    'memory_optim': ('pir', ['enable_memory_optim'], {}, 'handles'),
    'serial executor': ('pir', [], {'FLAGS_new_executor_serial_run': '1'}, 'handles'),
    'feed_fetch off': ('pir', [('switch_use_feed_fetch_ops', False)], {}, 'handles'),
    'onednn cache 10': ('pir', [('set_mkldnn_cache_capacity', 10)], {}, 'handles'),
    'bfloat16': ('pir', ['enable_mkldnn_bfloat16'], {}, 'handles'),
    'no dw pass': ('pir', [('delete_pass', 'depthwise_conv_onednn_pass')], {}, 'handles'),
    'run([tensor])': ('pir', [], {}, 'list'),
    'plain activations': ('plain', [], {}, 'handles'),
    'old IR': ('old', [('enable_new_ir', False)], {}, 'handles'),
    'old IR new exec': ('old', [('enable_new_ir', False), 'enable_new_executor'], {}, 'handles'),
    'old IR openvino': ('old', ['enable_openvino_engine', ('set_optim_cache_dir', '{tmp}/ov_cache')], {},
                        'handles'),
    'onnxruntime': ('onnx', [], {}, 'ort'),
}
FILES = {'pir': 'model.json', 'plain': 'plain.json', 'old': 'old.pdmodel', 'onnx': 'model.onnx'}


def export(model_name: str, folder: str, batches) -> None:
    """Subprocess: the exports and reference logits described in the module docstring."""
    sys.path.insert(0, ROOT)
    import contextlib
    import paddle
    import Paddle_Cream  # noqa: F401  (registers the cream models)
    import pimm
    import pimm.models.layers.activations as acts
    from pimm.inference import save_inference_model
    paddle.seed(0)
    model = pimm.create_model(model_name).eval()
    size = model.default_cfg['input_size'][-1]
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    for b in batches:
        x = np.random.RandomState(b).rand(b, 3, size, size).astype('float32')
        with paddle.no_grad():
            np.save(f'{folder}/ref_{b}.npy', model(paddle.to_tensor(x)).numpy())
        np.save(f'{folder}/x_{b}.npy', x)
    graph, params = save_inference_model(model, f'{folder}/model', size)
    import paddle2onnx
    with open(f'{folder}/model.onnx', 'wb') as f:
        f.write(paddle2onnx.export(graph, params, save_file=None, opset_version=13))
    fused = acts.fused_activations
    acts.fused_activations = contextlib.nullcontext   # save_inference_model looks it up at call time
    plain = pimm.create_model(model_name).eval()      # a new Layer: jit.save keeps a Layer's traced program
    plain.set_state_dict(model.state_dict())
    save_inference_model(plain, f'{folder}/plain', size)
    acts.fused_activations = fused
    import Paddle_Cream.models.child_net as child_net
    child_net.efficientnet_init_weights = lambda *a, **k: None  # initialisers set values eagerly
    from paddle.pir_utils import OldIrGuard
    with OldIrGuard():
        paddle.enable_static()
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data('x', [None, 3, size, size], 'float32')
            static_model = pimm.create_model(model_name)
            static_model.eval()
            with acts.fused_activations(static_model):
                y = static_model(x)
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        scope = paddle.static.global_scope()
        for key, var in static_model.state_dict().items():  # same layer order as ``model``
            scope.find_var(var.name).get_tensor().set(weights[key], paddle.CPUPlace())
        paddle.static.save_inference_model(f'{folder}/old', [x], [y], exe, program=main)


def paddle_predictor(graph: str, threads: int, calls, tmp: str, profile: bool = False):
    import paddle.inference as pdi
    params = os.path.splitext(graph)[0] + '.pdiparams'
    config = pdi.Config(graph, params)
    config.disable_gpu()  # the current create_predictor / paddle_config
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    for call in calls:
        name, *args = call if isinstance(call, tuple) else (call,)
        getattr(config, name)(*[a.format(tmp=tmp) if isinstance(a, str) else a for a in args])
    if profile:
        config.enable_profile()
    return pdi.create_predictor(config)


def make_runner(variant: str, folder: str, threads: int, profile: bool = False):
    kind, calls, _, api = VARIANTS[variant]
    path = os.path.join(folder, FILES[kind])
    if api == 'ort':
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    predictor = paddle_predictor(path, threads, calls, folder, profile)
    if api == 'list':
        import paddle
        return lambda x: predictor.run([paddle.to_tensor(x)])[0].numpy()
    return handle_runner(predictor)


def handle_runner(predictor):
    """The handle API: reshape, copy_from_cpu, run(), copy_to_cpu."""
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    out = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(x):
        inp.reshape(list(x.shape))
        inp.copy_from_cpu(x)
        predictor.run()
        return out.copy_to_cpu()
    return run


def time_runner(run, x, seconds: float):
    """Median wall ms and median process-CPU ms (all threads) of ``run(x)`` after warm-up, over at
    least 3 runs and ``seconds``; CPU time is not inflated by other processes' load."""
    start, warm = time.perf_counter(), 0
    while warm < 2 or time.perf_counter() - start < seconds / 4:
        run(x)
        warm += 1
    wall, cpu, start = [], [], time.perf_counter()
    while len(wall) < 3 or time.perf_counter() - start < seconds:
        t, c = time.perf_counter(), time.process_time()
        run(x)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def worker(variant: str, folder: str, threads: int, batches, seconds: float, profile: bool) -> None:
    """Subprocess: one JSON line {batch: [wall ms, cpu ms, rel]} or {'error': ...}."""
    try:
        os.chdir(folder)  # profile.log and the OpenVINO cache are written to the working directory
        run = make_runner(variant, folder, threads, profile)
        result = {}
        for b in batches:
            x, ref = np.load(f'{folder}/x_{b}.npy'), np.load(f'{folder}/ref_{b}.npy')
            rel = float(np.abs(run(x) - ref).max() / np.abs(ref).max())
            result[b] = [*time_runner(run, x, seconds), rel]
    except Exception as e:  # a setting that fails is a result too
        result = {'error': f'{type(e).__name__}: {str(e).strip().splitlines()[0][:150]}'}
    print('RESULT ' + json.dumps(result), flush=True)


def spawn(args, env=None):
    proc = subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, env=env)
    line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
    if proc.returncode or not line:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1][:150]
        return {'error': f'exit {proc.returncode}: {tail}'}
    return json.loads(line[-1][7:])


def overhead(folder: str, threads: int, seconds: float, rounds: int) -> None:
    """Time chains of 1 and 100 tiny 1x1 convolutions: predictor cost per run and per op."""
    if not os.path.exists(f'{folder}/chain100.json'):
        subprocess.run([sys.executable, SCRIPT, '--export-chains', folder], check=True,
                       capture_output=True)
    rows = {}
    for _ in range(rounds):
        for name, calls in (('onednn', []), ('onednn off', ['disable_mkldnn'])):
            for n in (1, 100):
                out = subprocess.run([sys.executable, SCRIPT, '--time-chain', folder, str(n),
                                      str(threads), str(seconds), json.dumps(calls)], capture_output=True, text=True)
                rows.setdefault((name, n), []).append([float(v) for v in out.stdout.split()[-2:]])
    print(f'\nPredictor overhead, {threads} thread(s), 1x8x4x4 input, median us per run over {rounds} rounds, '
          'wall / process CPU')
    for name in ('onednn', 'onednn off'):
        (w1, c1), (w100, c100) = (np.median(rows[(name, n)], axis=0) for n in (1, 100))
        print(f'  {name:10s} 1 conv {w1:6.0f} / {c1:6.0f}   100 convs {w100:6.0f} / {c100:6.0f}   '
              f'per op {(w100 - w1) / 99:5.1f} / {(c100 - c1) / 99:5.1f}')


def chains(folder: str) -> None:
    import paddle
    import paddle.nn as nn
    from paddle.static import InputSpec

    class Chain(nn.Layer):
        def __init__(self, n):
            super().__init__()
            self.convs = nn.LayerList([nn.Conv2D(8, 8, 1) for _ in range(n)])

        def forward(self, x):
            for conv in self.convs:
                x = conv(x)
            return x
    for n in (1, 100):
        paddle.jit.save(Chain(n).eval(), f'{folder}/chain{n}', input_spec=[InputSpec([None, 8, 4, 4], 'float32', 'x')])


def time_chain(folder: str, n: str, threads: str, seconds: str, calls: str) -> None:
    run = handle_runner(paddle_predictor(f'{folder}/chain{n}.json', int(threads), json.loads(calls), folder))
    print(*(1e3 * t for t in time_runner(run, np.random.rand(1, 8, 4, 4).astype('float32'), float(seconds))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', nargs='+', default=['14', '114', '604'])
    p.add_argument('--batches', nargs='+', type=int, default=[1, 16])
    p.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--seconds', type=float, default=0.5, help='timed seconds per batch and process')
    p.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument('--overhead', action='store_true', help='also time the 1- and 100-conv chains')
    p.add_argument('--profile', help=argparse.SUPPRESS)  # variant: print Paddle's op profile (model 1)
    args, rest = p.parse_known_args()
    sub = {'--worker': lambda v, d, t, sec, prof, *b: worker(v, d, int(t), [int(x) for x in b], float(sec), prof == '1'),
           '--export': lambda m, d, *b: export(m, d, [int(x) for x in b]),
           '--export-chains': chains, '--time-chain': time_chain}  # the subprocesses
    if rest:
        return sub[rest[0]](*rest[1:])
    variants = ['onnxruntime'] + [v for v in args.variants if v != 'onnxruntime']
    with tempfile.TemporaryDirectory(prefix='predictor_settings_') as tmp:
        folders = {}
        for m in args.models:
            folders[m] = os.path.join(tmp, f'cream_{m}')
            os.makedirs(folders[m])
            proc = subprocess.run([sys.executable, SCRIPT, '--export', f'cream_{m}', folders[m]]
                                  + [str(b) for b in args.batches], capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f'export of cream_{m} failed:\n{proc.stderr[-2000:]}')
        if args.profile:
            return subprocess.run([sys.executable, SCRIPT, '--worker', args.profile,
                                   folders[args.models[0]], str(args.threads[0]), str(args.seconds), '1',
                                   str(args.batches[0])], env=dict(os.environ, **VARIANTS[args.profile][2]))
        results = {}  # (variant, model, threads) -> {batch: [ms per round], 'rel': worst, 'error': text}
        t0 = time.time()
        for r in range(args.rounds):
            for m in args.models:
                for t in args.threads:
                    for v in variants if r % 2 == 0 else variants[::-1]:
                        env = dict(os.environ, **VARIANTS[v][2])
                        got = spawn(['--worker', v, folders[m], t, args.seconds, 0] + args.batches, env)
                        cell = results.setdefault((v, m, t), {'rel': 0.0})
                        if 'error' in got:
                            cell['error'] = got['error']
                            continue
                        for b, (ms, cpu, rel) in got.items():
                            cell.setdefault(int(b), []).append(ms)
                            cell.setdefault(f'cpu{b}', []).append(cpu)
                            cell['rel'] = max(cell['rel'], rel)
            print(f'round {r + 1}/{args.rounds} done after {time.time() - t0:.0f} s', flush=True)
            if r + 1 < args.rounds:
                report(results, variants, args, r + 1, clocks=1)  # partial table, in case the run is cut short
        report(results, variants, args, args.rounds)
        if args.overhead:
            for t in args.threads:
                overhead(tmp, t, args.seconds, args.rounds)


def report(results, variants, args, rounds: int, clocks: int = 2) -> None:
    cols = [(m, b, t) for m in args.models for b in args.batches for t in args.threads]
    errors = []
    for clock, key in (('wall', '{}'), ('process CPU (all threads)', 'cpu{}'))[:clocks]:
        print(f'\n{clock} ms per batch, median over {rounds} rounds (x ONNX Runtime); '
              f'rel = max|out-ref|/max|ref| vs dygraph')
        print(f'{"setting":19s}' + ''.join(f'{f"{m}/b{b}/t{t}":>16s}' for m, b, t in cols) + '  rel')
        for v in variants:
            cells, worst = [], 0.0
            for m, b, t in cols:
                cell = results.get((v, m, t), {})
                ref = results.get(('onnxruntime', m, t), {}).get(key.format(b) if key != '{}' else b)
                got = cell.get(key.format(b) if key != '{}' else b)
                if not got:
                    cells.append(f'{"error":>16s}')
                    errors.append(f'{v} ({m}/t{t}): {cell.get("error", "no result")}')
                    continue
                ms = statistics.median(got)
                cells.append(f'{ms:9.2f} ({ms / statistics.median(ref) if ref else float("nan"):4.1f})')
                worst = max(worst, cell['rel'])
            print(f'{v:19s}' + ''.join(cells) + f'  {worst:.0e}' + (' !' if worst > REL_LIMIT else ''))
    print(*(f'error: {e}' for e in dict.fromkeys(errors)), sep='\n', flush=True)


if __name__ == '__main__':
    main()
