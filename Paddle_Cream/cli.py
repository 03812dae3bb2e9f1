"""The Paddle_Cream command line: ``cream MODE CONFIG [KEY VALUE ...]`` (installed) or
``python tools/main.py MODE CONFIG [KEY VALUE ...]`` (a checkout); both call :func:`main`.

The entry scripts (``tools/main.py``, and ``_cream_entry.py`` behind the ``cream`` command) set
Paddle's log level before Paddle is imported, then call :func:`main` with their program name and
their own file, which a multi-process run (NUM_GPU > 1) starts again under
paddle.distributed.launch.
"""
import os
import signal
import sys

# the ``cream`` command's entry file, beside this package (in site-packages, or at the root of a checkout)
ENTRY_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '_cream_entry.py')
MODES = ('train', 'retrain', 'test', 'evolve', 'rank', 'export', 'predict', 'latency')
HELP_FLAGS = ('-h', '--help')
HELP = """Paddle_Cream command line: ``{prog} MODE CONFIG [KEY VALUE ...]``.

MODE: train (Cream or SPOS supernet search), retrain (train one child network from
scratch), test (evaluate a network and report paper parity), evolve (SPOS evolutionary search on a
search checkpoint, RESUME_PATH), rank (inherited vs retrained top-1 rank correlation of random paths),
export (Paddle Inference and ONNX files of a network, parity-checked), predict (classify the images
under INPUT), latency (a latency table of the search's hypernetwork measured on this device, validated
on random whole networks, for SUPERNET.LATENCY_TABLE).
CONFIG: a YAML file of config keys (see Paddle_Cream/config/defaults.py);
KEY VALUE pairs after it override the file. NUM_GPU > 1 runs the mode under
paddle.distributed.launch (GPUs, or gloo CPU processes without GPUs).
{prog} MODE --help: the mode's config files, its most used keys and an example."""


def usage(prog: str = 'cream') -> str:
    return f"usage: {prog} {{{','.join(MODES)}}} CONFIG [KEY VALUE ...]"


def _modes():
    from Paddle_Cream.engine.retrain_setup import check_retrain_inputs
    from Paddle_Cream.engine.run_retrain import run_retrain
    from Paddle_Cream.engine.run_test import check_test_inputs, run_test
    from Paddle_Cream.engine.run_train import run_train
    from Paddle_Cream.engine.search_setup import check_train_inputs
    from Paddle_Cream.engine.run_evolve import check_evolve_inputs, run_evolve
    from Paddle_Cream.engine.run_rank import check_rank_inputs, run_rank
    from Paddle_Cream.engine.run_export import check_export_inputs, run_export
    from Paddle_Cream.engine.run_predict import check_predict_inputs, run_predict
    from Paddle_Cream.engine.run_latency import check_latency_inputs, run_latency
    # mode -> (checks run before any process is launched, the mode itself)
    return {'train': (check_train_inputs, run_train), 'retrain': (check_retrain_inputs, run_retrain),
            'test': (check_test_inputs, run_test), 'evolve': (check_evolve_inputs, run_evolve),
            'rank': (check_rank_inputs, run_rank), 'export': (check_export_inputs, run_export),
            'predict': (check_predict_inputs, run_predict), 'latency': (check_latency_inputs, run_latency)}


def _user_errors():
    from Paddle_Cream.config import ConfigError
    from Paddle_Cream.engine import UserError
    from Paddle_Cream.search import BudgetError   # budgets no sampled path can meet, found mid-run
    from pimm.data import CorruptImageError, DatasetError, LoaderWorkerError
    return (ConfigError, UserError, DatasetError, CorruptImageError, LoaderWorkerError, BudgetError)


def one_line(error: BaseException) -> str:
    """The message of ``error`` as one line. Errors raised in DataLoader workers come back
    wrapped in the worker's traceback: keep their last line, without the class name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else type(error).__name__
    name = type(error).__name__
    return last.split(f'{name}: ', 1)[-1] if f'{name}: ' in last else last


def main(argv=None, prog: str = 'cream', script: str = None) -> int:
    """Run ``MODE CONFIG [KEY VALUE ...]`` (``argv``, default ``sys.argv[1:]``); the exit code.

    ``prog`` names the command in the usage line; ``script`` is the entry file that a multi-process
    run (NUM_GPU > 1) starts under paddle.distributed.launch with the same ``argv`` (default:
    :data:`ENTRY_SCRIPT`, the ``cream`` command's). Without arguments: the help, exit 2;
    ``-h``/``--help``: the help, exit 0."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in HELP_FLAGS:
        print(HELP.format(prog=prog) + '\n\n' + usage(prog))
        return 0 if argv else 2
    if argv[0] in MODES and any(a in HELP_FLAGS for a in argv[1:]):
        from Paddle_Cream.mode_help import mode_help
        print(mode_help(argv[0], prog))
        return 0
    from Paddle_Cream.config import load_config
    from Paddle_Cream.engine.distributed import launch_command, on_cpu
    from pimm.utils.distributed import launched_world_size
    from Paddle_Cream.engine.errors import os_error_line
    from Paddle_Cream.engine.output import create_output_dir, escape_undecodable_output
    from pimm.utils.run_lock import HOLDER_ENV, release_run_folders
    modes, errors = _modes(), _user_errors()
    escape_undecodable_output()   # an error line naming a file that is not UTF-8 must still print
    _termination['received'] = False
    previous_handler = signal.signal(signal.SIGTERM, _terminated)
    mode = argv[0]
    try:
        if mode not in modes:
            raise errors[0](f"unknown mode '{mode}'; valid: {', '.join(modes)}")
        if len(argv) < 2:
            raise errors[0](f'{mode} needs a CONFIG file: {usage(prog)}')
        cfg = load_config(argv[1], argv[2:])
        preflight, run = modes[mode]
        with on_cpu():  # a parent that relaunches must not hold a CUDA context on GPU 0 for the whole run
            preflight(cfg)
        if cfg.NUM_GPU > 1 and launched_world_size() == 1:
            out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), mode)
            cmd, env = launch_command(cfg.NUM_GPU, os.path.abspath(script or ENTRY_SCRIPT), argv,
                                      os.path.join(out_dir, f'{mode}_launch_logs'))
            env[HOLDER_ENV] = str(os.getpid())   # this launcher holds the folder's lock for its ranks
            return _run_launcher(cmd, env)
        run(cfg)
    except errors as e:
        if _termination['received']:  # raised while the run was unwinding from a SIGTERM
            return _interrupted(e)
        print(f'error: {one_line(e)}', file=sys.stderr)
        return 1
    except OSError as e:  # the user's paths: a full disk, no permission, a file where a folder should be...
        line = os_error_line(e)
        if _termination['received']:
            return _interrupted(e)
        if line is None:
            raise
        print(f'error: {line}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return _interrupted()
    finally:
        signal.signal(signal.SIGTERM, previous_handler)  # main() called in-process leaves its caller as it was
        release_run_folders()
    return 0


_termination = {'received': False}


def _terminated(signum, frame):
    # SIGTERM (a scheduler's kill, a container stop) unwinds like Ctrl-C: atomic writers remove their
    # temporary files, loader workers are shut down, and the run ends with one line. A second one while
    # unwinding is ignored: raised inside that clean-up it would leave it half done.
    if _termination['received']:
        return
    _termination['received'] = True
    raise KeyboardInterrupt


def _interrupted(during: BaseException = None) -> int:
    """The one line of a run stopped by Ctrl-C or SIGTERM (with what the unwinding hit, if anything)."""
    detail = f' (while stopping: {one_line(during)})' if during is not None else ''
    print(f'error: interrupted{detail}', file=sys.stderr)
    return 130


def _run_launcher(cmd, env) -> int:
    """Run paddle.distributed.launch; an interrupt of this parent stops the ranks too."""
    import subprocess
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise

