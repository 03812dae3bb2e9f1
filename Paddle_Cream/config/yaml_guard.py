"""Reading a config file safely: bounded size, UTF-8, YAML that cannot expand in memory.

``yaml.safe_load`` builds whatever a file describes before anything can check it: a few hundred bytes
of nested aliases (a "billion laughs" file) expand to millions of elements. Configs have no use for
aliases (the official ones have none), so they are refused, and the number of YAML values and their
nesting are capped while the document is composed, before any Python object is built.
"""
import os
from typing import Any, Dict

import yaml

from .declare import ConfigError

__all__ = ['MAX_CONFIG_BYTES', 'MAX_YAML_NODES', 'MAX_YAML_DEPTH', 'UnsafeYaml', 'safe_yaml', 'read_config_file']

MAX_CONFIG_BYTES = 1 << 20   # the official configs are about 2 KB
MAX_YAML_NODES = 10_000      # YAML values in one document (the official configs have about 150)
MAX_YAML_DEPTH = 16          # nesting of mappings and lists (the deepest key, NET.INPUT_ARCH, is 4 down)


class UnsafeYaml(yaml.YAMLError):
    """YAML a config may not hold (an alias, too many values, too deep); the message says which."""


class _GuardedLoader(yaml.SafeLoader):
    """``SafeLoader`` refusing aliases and capping values and nesting as nodes are composed."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def construct_mapping(self, node, deep=False):
        # plain YAML keeps the last of two equal keys: a block written twice would silently lose the first
        seen = {}
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                raise UnsafeYaml(f"sets '{key}' twice in one mapping (lines {seen[key]} and "
                                 f"{key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise UnsafeYaml(f'uses a YAML alias at line {mark.line + 1}; configs may not (write the value out)')
        self._nodes += 1
        if self._nodes > MAX_YAML_NODES:
            raise UnsafeYaml(f'holds more than {MAX_YAML_NODES} YAML values')
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise UnsafeYaml(f'nests lists or mappings more than {MAX_YAML_DEPTH} deep')
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_yaml(text: str) -> Any:
    """``text`` as YAML (safe types only) through the guard; YAMLError / UnsafeYaml / ValueError otherwise."""
    loader = _GuardedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_text(path: str) -> str:
    try:
        with open(path, 'rb') as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"config file '{path}' cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file '{path}' is larger than {MAX_CONFIG_BYTES // 1024} KB; a config is a few "
                          f"KB of KEY: VALUE lines")
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file '{path}' is not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                          f"{e.start})") from None


def read_config_file(path: str) -> Dict[str, Any]:
    """The mapping of keys in the YAML file at ``path`` (empty file: ``{}``), or a one-line ConfigError."""
    if os.path.isdir(path):
        raise ConfigError(f"config file '{path}' is a directory: give a .yaml file (configs/ has them)")
    if not os.path.isfile(path):
        raise ConfigError(f"config file '{path}' not found")
    text = _read_text(path)
    try:
        tree = safe_yaml(text)
    except UnsafeYaml as e:
        raise ConfigError(f"config file '{path}' {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f' at line {mark.line + 1}' if mark else ''
        problem = getattr(e, 'problem', None)
        raise ConfigError(f"config file '{path}' is not valid YAML{where}" + (f': {problem}' if problem else '')) \
            from None
    except ValueError as e:   # e.g. an integer of more digits than Python converts
        raise ConfigError(f"config file '{path}' holds a value YAML cannot convert: {str(e).splitlines()[0]}") \
            from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys, not {type(tree).__name__}")
    return tree
