"""Load YAML configs over the typed defaults, apply ``KEY VALUE`` overrides, reject unknown keys."""
import copy
import difflib
import os
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import yaml

from .defaults import DEFAULTS

__all__ = ['ConfigError', 'Config', 'load_config']


class ConfigError(ValueError):
    """A config file or override is invalid (one-line message)."""


def _flat_keys(tree: Mapping[str, Any], prefix: str = '') -> Iterator[str]:
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flat_keys(v, prefix + k + '.')
        else:
            yield prefix + k


_ALL_KEYS = sorted(_flat_keys(DEFAULTS))


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _ALL_KEYS, n=1, cutoff=0.5)
    if not close:  # a typo in the last part: compare leaves
        leaves = {k.rsplit('.', 1)[-1]: k for k in _ALL_KEYS}
        hit = difflib.get_close_matches(key.rsplit('.', 1)[-1], leaves, n=1, cutoff=0.6)
        close = [leaves[hit[0]]] if hit else []
    hint = f"; did you mean '{close[0]}'?" if close else ''
    return ConfigError(f"unknown config key '{key}'{hint}")


def _coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default``, or ConfigError."""
    if default is None or value is None and default is None:
        return value
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ('true', 'false'):
                return value.lower() == 'true'
            raise TypeError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind is str:
            if isinstance(value, (list, dict)):
                raise TypeError
            return '' if value is None else str(value)
        if kind in (list, tuple):
            if not isinstance(value, (list, tuple)):
                raise TypeError
            return list(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"config key '{key}' expects {kind.__name__} (like {default!r}), got {value!r}")


class Config:
    """Nested, attribute-access configuration (``cfg.NET.EMA.USE``) over :data:`DEFAULTS`."""

    def __init__(self, tree: Optional[Dict[str, Any]] = None):
        object.__setattr__(self, '_tree', copy.deepcopy(DEFAULTS) if tree is None else tree)

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._tree[name]
        except KeyError:
            raise AttributeError(f"no config key '{name}'") from None
        return Config(value) if isinstance(value, dict) else value

    def __setattr__(self, name, value):
        raise AttributeError('Config is read-only after loading; use overrides')

    def get(self, dotted: str) -> Any:
        node: Any = self._tree
        for part in dotted.split('.'):
            node = node[part]
        return Config(node) if isinstance(node, dict) else node

    def set(self, dotted: str, value: Any) -> None:
        """Set one key (dotted), type-checked against the defaults."""
        parts = dotted.split('.')
        node, default = self._tree, DEFAULTS
        for part in parts[:-1]:
            if part not in default or not isinstance(default[part], dict):
                raise _unknown(dotted)
            node, default = node[part], default[part]
        leaf = parts[-1]
        if leaf not in default or isinstance(default[leaf], dict):
            raise _unknown(dotted)
        node[leaf] = _coerce(dotted, value, default[leaf])

    def merge(self, tree: Mapping[str, Any], prefix: str = '') -> None:
        """Merge a nested mapping (as read from YAML)."""
        for k, v in tree.items():
            key = prefix + str(k)
            if isinstance(v, Mapping):
                if not isinstance(self._default_at(key), dict):
                    raise _unknown(key)
                self.merge(v, key + '.')
            else:
                self.set(key, v)

    @staticmethod
    def _default_at(dotted: str) -> Any:
        node: Any = DEFAULTS
        for part in dotted.split('.'):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def to_dict(self) -> Dict[str, Any]:
        return copy.deepcopy(self._tree)

    def dump(self) -> str:
        return yaml.safe_dump(self._tree, sort_keys=False, default_flow_style=None)

    def __repr__(self):
        return f'Config({self._tree!r})'


def _parse_override(key: str, raw: str) -> Tuple[str, Any]:
    try:
        value = yaml.safe_load(raw) if raw != '' else ''
    except yaml.YAMLError:
        value = raw
    return key, value


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path``, then ``KEY VALUE`` pairs from ``overrides``."""
    cfg = Config()
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"config file '{path}' not found")
        try:
            with open(path) as f:
                tree = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, 'problem_mark', None)
            where = f' at line {mark.line + 1}' if mark else ''
            raise ConfigError(f"config file '{path}' is not valid YAML{where}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping of keys, not {type(tree).__name__}")
        cfg.merge(tree)
    if len(overrides) % 2:
        raise ConfigError(f"overrides come in KEY VALUE pairs; '{overrides[-1]}' has no value")
    for key, raw in zip(overrides[::2], overrides[1::2]):
        cfg.set(*_parse_override(key, raw))
    return cfg
