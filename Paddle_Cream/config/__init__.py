"""The one configuration system: declared keys (default + what each accepts), YAML files, ``KEY VALUE`` overrides."""
from .config import Config, ConfigError, load_config
from .defaults import DEFAULTS, SCHEMA

__all__ = ['Config', 'ConfigError', 'load_config', 'DEFAULTS', 'SCHEMA']
