"""What a resume may change. The keys declared ``fixed`` for a mode in ``config/defaults.py`` (the search's
budgets, slice and pool, classes, image size, seed, optimizer...) are what its checkpoint was made with: a
resume giving another value is refused naming the key, old and new value. Every other key may change
(LR, EPOCHS, WORKERS, paths...); the resumed run logs each one that did."""
from typing import Any, Dict, List, Mapping, Optional

import yaml

from ..config.config import all_keys
from ..config.defaults import declaration, lookup
from .errors import UserError

__all__ = ['saved_config', 'config_changes']

NEVER_COMPARED = ('RESUME_PATH', 'AUTO_RESUME')   # how a run is resumed, not what it is
_MISSING = object()


def saved_config(entry: Any) -> Optional[Dict[str, Any]]:
    """The config tree a checkpoint stored (a search's YAML text or a retrain's ``args`` mapping), or None."""
    if isinstance(entry, str):
        try:
            entry = yaml.safe_load(entry)
        except yaml.YAMLError:
            return None
    return entry if isinstance(entry, Mapping) else None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def config_changes(saved: Optional[Mapping[str, Any]], cfg, mode: str, path: str) -> List[str]:
    """``KEY old -> new`` for every key this resume changes; a UserError for the first key that ``mode``'s
    checkpoint fixes. Keys the checkpoint does not record (an older checkpoint) are not compared."""
    if saved is None:
        return []
    changes = []
    for key in all_keys():
        if key in NEVER_COMPARED:
            continue
        old, new = lookup(saved, key, _MISSING), cfg.get(key)
        if old is _MISSING or _same(old, new):
            continue
        if mode in declaration(key).fixed_on_resume:
            raise UserError(f'{path} was made with {key} {old!r}, this run gives {new!r}: a resumed {mode} keeps it '
                            f"(docs/usage.md 'Resuming' lists the keys a resume may not change); give {old!r} or start a "
                            f'new run (another MODEL)')
        changes.append(f'{key} {old!r} -> {new!r}')
    return changes
