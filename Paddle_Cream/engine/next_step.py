"""The command of the step after a run, as a mode prints it when it ends.

``python tools/main.py MODE CONFIG`` followed only by the ``KEY VALUE`` settings that ``CONFIG`` does not already
hold: after the demo's runs these are the short commands of the README, word for word, and after a run with
other settings (another DATA_DIR, class count or budget) they carry exactly those settings on.
"""
import os
import shlex
from typing import Any, Optional, Sequence, Tuple

from ..config import Config, ConfigError, load_config
from ..config.declare import check_value
from ..config.defaults import declaration

__all__ = ['next_command', 'next_model']

# the checkout the printed ``python tools/main.py`` runs in, whose configs/ the commands name
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# the modes whose name a run's MODEL may end with (``demo_search``, ``demo_retrain``), replaced by the next one
_STEP_SUFFIXES = ('_search', '_retrain', '_evolve', '_test', '_export', '_predict', '_rank', '_latency')


def next_model(model: str, mode: str) -> str:
    """The MODEL of the ``mode`` run after a run named ``model``: ``demo_search`` -> ``demo_retrain`` ->
    ``demo_test``, ``demo_spos`` -> ``demo_spos_evolve``. Its own folder name, never the finished run's."""
    base = next((model[:-len(s)] for s in _STEP_SUFFIXES if model.endswith(s) and len(model) > len(s)), model)
    return f'{base}_{mode}'


def _target(config: str) -> Optional[Config]:
    """The configuration ``config`` loads, or None where the checkout's file is missing or unreadable (an
    installed package): every setting is then printed."""
    path = os.path.join(REPO_ROOT, config)
    if not os.path.isfile(path):
        return None
    try:
        return load_config(path)
    except (ConfigError, OSError):
        return None


def _holds(target: Config, key: str, value: Any) -> bool:
    """Whether the loaded ``target`` already has ``key`` at ``value`` (converted as an override would be;
    paths compared after normalisation, so ``data/digits`` is ``./data/digits``)."""
    try:
        wanted = check_value(key, declaration(key), value)
    except ConfigError:
        return False
    held = target.get(key)
    if isinstance(held, str) and isinstance(wanted, str) and held and wanted:
        return os.path.normpath(held) == os.path.normpath(wanted)
    return held == wanted


def _word(value: Any) -> str:
    return shlex.quote(str(value))


def next_command(mode: str, config: str, settings: Sequence[Tuple[str, Any]]) -> str:
    """``python tools/main.py mode config KEY VALUE ...`` with the ``settings`` that ``config`` (a path
    relative to the checkout) does not already hold, in their given order; values shell-quoted."""
    target = _target(config)
    kept = [(key, value) for key, value in settings if target is None or not _holds(target, key, value)]
    words = ['python', 'tools/main.py', mode, config] + [w for key, value in kept for w in (key, _word(value))]
    return ' '.join(words)
