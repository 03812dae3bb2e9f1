"""Load YAML configs over the declared defaults, apply ``KEY VALUE`` overrides; every value is converted
and checked against its declaration (``defaults.SCHEMA``) as it is set, unknown keys are refused."""
import copy
import difflib
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence

import yaml

from .declare import ConfigError, check_value
from .defaults import DEFAULTS, SCHEMA, declaration
from .yaml_guard import read_config_file, safe_yaml

__all__ = ['ConfigError', 'Config', 'load_config', 'all_keys']


def _flat_keys(tree: Mapping[str, Any], prefix: str = '') -> Iterator[str]:
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flat_keys(v, prefix + k + '.')
        else:
            yield prefix + k


_ALL_KEYS = tuple(sorted(_flat_keys(SCHEMA)))


def all_keys() -> tuple:
    """Every declared key, dotted (``NET.EMA.USE``), sorted."""
    return _ALL_KEYS


def _unknown(key: str) -> ConfigError:
    exact = [k for k in _ALL_KEYS if k.lower() == key.lower()]   # 'epochs' for EPOCHS: keys are upper case
    close = exact or difflib.get_close_matches(key, _ALL_KEYS, n=1, cutoff=0.5)
    if not close:  # a typo in the last part: compare leaves
        leaves = {k.rsplit('.', 1)[-1]: k for k in _ALL_KEYS}
        hit = difflib.get_close_matches(key.rsplit('.', 1)[-1], leaves, n=1, cutoff=0.6)
        close = [leaves[hit[0]]] if hit else []
    hint = f"; did you mean '{close[0]}'?" if close else ''
    return ConfigError(f"unknown config key '{key}'{hint}")


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
        """Set one key (dotted), converted and checked against its declaration (ConfigError otherwise)."""
        decl = declaration(dotted)
        if isinstance(decl, dict):
            first = next(iter(_flat_keys(decl, dotted + '.')))
            raise ConfigError(f"'{dotted}' is a group of keys, not one value: set its keys one by one (e.g. "
                              f"{first} VALUE)")
        if decl is None:
            raise _unknown(dotted)
        *groups, leaf = dotted.split('.')
        node = self._tree
        for part in groups:
            node = node[part]
        node[leaf] = check_value(dotted, decl, value)

    def merge(self, tree: Mapping[str, Any], prefix: str = '') -> None:
        """Merge a nested mapping (as read from YAML)."""
        for k, v in tree.items():
            key = prefix + str(k)
            if isinstance(v, Mapping):
                if not isinstance(declaration(key), dict):
                    raise _unknown(key)
                self.merge(v, key + '.')
            else:
                self.set(key, v)

    def to_dict(self) -> Dict[str, Any]:
        return copy.deepcopy(self._tree)

    def dump(self) -> str:
        return yaml.safe_dump(self._tree, sort_keys=False, default_flow_style=None)

    def __repr__(self):
        return f'Config({self._tree!r})'


def _parse_override(raw: str) -> Any:
    """An override's value as YAML reads it (``8``, ``True``, ``[0.6, 1.0]``), else the raw string."""
    if raw == '':
        return ''
    try:
        return safe_yaml(raw)
    except (yaml.YAMLError, ValueError):   # not YAML (or refused by the guard): the plain string
        return raw


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path``, then ``KEY VALUE`` pairs from ``overrides``; every
    value is checked against its declaration as it is set (one-line ConfigError)."""
    cfg = Config()
    if path is not None:
        tree = read_config_file(path)
        try:
            cfg.merge(tree)
        except ConfigError as e:
            raise ConfigError(f"{e} (in '{path}')") from None
    if len(overrides) % 2:
        raise ConfigError(f"overrides come in KEY VALUE pairs; '{overrides[-1]}' has no value")
    for key, raw in zip(overrides[::2], overrides[1::2]):
        cfg.set(str(key), _parse_override(str(raw)))
    return cfg
