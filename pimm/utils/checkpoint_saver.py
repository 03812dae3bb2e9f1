"""Keep the best training checkpoints by metric, plus ``last`` and recovery files (timm's ``CheckpointSaver``)."""
import glob
import logging
import operator
import os
import shutil
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from .checkpoint_io import save_paddle_file
from .model_ema import unwrap_model

__all__ = ['CheckpointSaver']

_logger = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """``value`` as plain Python data (dicts, lists, str, numbers, None) that any unpickler can read."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _plain_args(args: Any) -> Dict[str, Any]:
    """A config (mapping, object with ``to_dict()``, or namespace) as a plain dict."""
    if hasattr(args, 'to_dict'):
        args = args.to_dict()
    elif not isinstance(args, Mapping):
        if not hasattr(args, '__dict__'):
            raise TypeError(f'args must be a mapping, a namespace or have to_dict(), not {type(args).__name__}')
        args = vars(args)
    return _plain(args)


def _metric(metric: Any) -> Optional[float]:
    return None if metric is None else float(metric.item() if hasattr(metric, 'item') else metric)


class CheckpointSaver:
    """Save training checkpoints: ``last.pdparams`` every time, ``<prefix>-<epoch>.pdparams`` for the best
    ``max_history`` by metric (lower is better with ``decreasing``), ``model_best.pdparams`` for the best,
    and ``recovery-<epoch>-<batch>.pdparams`` on request. Every file appears atomically (temp + rename).

    A checkpoint holds ``epoch``, ``arch``, ``state_dict``, ``optimizer``, ``version`` (2: resume at
    epoch + 1), ``metric``, ``state_dict_ema`` (with ``model_ema``), ``amp_scaler`` (the AMP loss scaler's
    state, with ``amp_scaler``) and ``args`` as a plain dict; it loads with ``pimm.models.load_checkpoint`` /
    ``resume_checkpoint``.
    """
    extension = '.pdparams'

    def __init__(self, model: nn.Layer, optimizer: paddle.optimizer.Optimizer, args: Any = None,
                 model_ema: Any = None, checkpoint_prefix: str = 'checkpoint', recovery_prefix: str = 'recovery',
                 checkpoint_dir: str = '', recovery_dir: str = '', decreasing: bool = False,
                 max_history: int = 10, amp_scaler: Any = None) -> None:
        if max_history < 1:
            raise ValueError(f'max_history must be >= 1, got {max_history}')
        self.model, self.optimizer, self.args, self.model_ema = model, optimizer, args, model_ema
        self.amp_scaler = amp_scaler
        self.checkpoint_files: List[Tuple[str, Optional[float]]] = []  # best first, unranked (no metric) last
        self.best_epoch: Optional[int] = None
        self.best_metric: Optional[float] = None
        self.curr_recovery_file = ''
        self.prev_recovery_file = ''
        self.checkpoint_dir, self.recovery_dir = checkpoint_dir, recovery_dir
        self.save_prefix, self.recovery_prefix = checkpoint_prefix, recovery_prefix
        self.decreasing = decreasing
        self.cmp = operator.lt if decreasing else operator.gt  # cmp(a, b): a is better than b
        self.max_history = max_history

    def _arch(self, plain_args: Optional[Dict[str, Any]]) -> str:
        for key in ('model', 'MODEL'):
            if plain_args and isinstance(plain_args.get(key), str):
                return plain_args[key]
        return type(unwrap_model(self.model)).__name__.lower()

    def _save(self, path: str, epoch: int, metric: Optional[float] = None) -> None:
        args = None if self.args is None else _plain_args(self.args)
        state = {'epoch': epoch, 'arch': self._arch(args), 'state_dict': unwrap_model(self.model).state_dict(),
                 'optimizer': self.optimizer.state_dict(), 'version': 2}
        if args is not None:
            state['args'] = args
        if self.model_ema is not None:
            ema = getattr(self.model_ema, 'module', self.model_ema)
            state['state_dict_ema'] = unwrap_model(ema).state_dict()
        if self.amp_scaler is not None:
            state['amp_scaler'] = self.amp_scaler.state_dict()
        if metric is not None:
            state['metric'] = metric
        save_paddle_file(state, path)

    @staticmethod
    def _duplicate(src: str, dst: str) -> None:
        """``dst`` becomes a hard link to (or else a copy of) ``src``, atomically."""
        tmp = os.path.join(os.path.dirname(dst), f'.{os.path.basename(dst)}.{os.getpid()}.tmp')
        try:
            if os.path.lexists(tmp):
                os.remove(tmp)
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copy2(src, tmp)
            os.replace(tmp, dst)
        finally:
            if os.path.lexists(tmp):
                os.remove(tmp)

    def _path(self, name: str) -> str:
        return os.path.join(self.checkpoint_dir, name + self.extension)

    def save_checkpoint(self, epoch: int, metric: Any = None) -> Tuple[Optional[float], Optional[int]]:
        """Save ``last`` and, if it ranks among the best ``max_history``, ``<prefix>-<epoch>``.

        Without a metric checkpoints are kept by recency and never displace ranked ones.
        Returns (best metric, best epoch), (None, None) until a checkpoint had a metric.
        """
        if epoch < 0:
            raise ValueError(f'epoch must be >= 0, got {epoch}')
        metric = _metric(metric)
        last = self._path('last')
        self._save(last, epoch, metric)
        save_path = self._path(f'{self.save_prefix}-{epoch}')
        self.checkpoint_files = [c for c in self.checkpoint_files if c[0] != save_path]
        worst = self.checkpoint_files[-1] if self.checkpoint_files else None
        if (len(self.checkpoint_files) < self.max_history or worst[1] is None
                or (metric is not None and self.cmp(metric, worst[1]))):
            self._prune(self.max_history - 1)
            self._duplicate(last, save_path)
            self._track(save_path, epoch, metric)
        return (None, None) if self.best_metric is None else (self.best_metric, self.best_epoch)

    def _prune(self, keep: int) -> None:
        """Delete all but the first ``keep`` tracked checkpoints."""
        for path, _ in self.checkpoint_files[keep:]:
            try:
                os.remove(path)
            except OSError as e:
                _logger.error("could not delete checkpoint '%s': %s", path, e)
        self.checkpoint_files = self.checkpoint_files[:keep]

    def _track(self, path: str, epoch: int, metric: Optional[float]) -> None:
        ranked = [c for c in self.checkpoint_files if c[1] is not None]
        unranked = [c for c in self.checkpoint_files if c[1] is None]
        if metric is None:
            unranked.insert(0, (path, None))  # newest first
        else:  # best first; the sort is stable, so ties keep the earlier epoch first
            ranked = sorted(ranked + [(path, metric)], key=lambda c: c[1], reverse=not self.decreasing)
        self.checkpoint_files = ranked + unranked
        _logger.info('current checkpoints: %s', ', '.join(f'{os.path.basename(p)} ({m})' for p, m in ranked + unranked))
        if metric is not None and (self.best_metric is None or self.cmp(metric, self.best_metric)):
            self.best_epoch, self.best_metric = epoch, metric
            self._duplicate(self._path('last'), self._path('model_best'))

    def save_recovery(self, epoch: int, batch_idx: int = 0) -> str:
        """Save ``recovery-<epoch>-<batch_idx>``, keeping only the previous recovery file; return its path."""
        if epoch < 0:
            raise ValueError(f'epoch must be >= 0, got {epoch}')
        path = os.path.join(self.recovery_dir, f'{self.recovery_prefix}-{epoch}-{batch_idx}{self.extension}')
        self._save(path, epoch)
        if self.prev_recovery_file and self.prev_recovery_file != path and os.path.exists(self.prev_recovery_file):
            try:
                os.remove(self.prev_recovery_file)
            except OSError as e:
                _logger.error("could not delete recovery file '%s': %s", self.prev_recovery_file, e)
        self.prev_recovery_file, self.curr_recovery_file = self.curr_recovery_file, path
        return path

    def find_recovery(self) -> str:
        """The first recovery file in ``recovery_dir`` (sorted by name), or ''."""
        pattern = glob.escape(os.path.join(self.recovery_dir, self.recovery_prefix)) + '*' + glob.escape(self.extension)
        files = sorted(glob.glob(pattern))   # the folder and prefix literally (a run folder may be 'out[1]')
        return files[0] if files else ''
