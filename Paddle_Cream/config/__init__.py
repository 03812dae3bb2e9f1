"""The one configuration system: typed defaults, YAML files, ``KEY VALUE`` overrides."""
from .config import Config, ConfigError, load_config
from .defaults import DEFAULTS
