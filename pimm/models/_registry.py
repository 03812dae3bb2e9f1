"""Model registry: ``@register_model`` entry points looked up by name."""
import difflib
import fnmatch
from typing import Callable, Dict, List

__all__ = ['register_model', 'list_models', 'is_model', 'model_entrypoint']

_ENTRYPOINTS: Dict[str, Callable] = {}


def register_model(fn: Callable) -> Callable:
    """Register ``fn`` as a model entry point under its function name."""
    name = fn.__name__
    if name in _ENTRYPOINTS and _ENTRYPOINTS[name] is not fn:
        raise ValueError(f"model '{name}' is already registered by {_ENTRYPOINTS[name].__module__}")
    _ENTRYPOINTS[name] = fn
    return fn


def list_models(filter: str = '') -> List[str]:
    """Sorted registered names, optionally filtered by a wildcard pattern (``'cream_*'``)."""
    names = sorted(_ENTRYPOINTS)
    return fnmatch.filter(names, filter) if filter else names


def is_model(name: str) -> bool:
    return name in _ENTRYPOINTS


def model_entrypoint(name: str) -> Callable:
    """The entry point for ``name``; an unknown name raises with the valid choices."""
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(name, _ENTRYPOINTS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        valid = ', '.join(list_models()) or 'none registered (import Paddle_Cream to register the Cream models)'
        raise ValueError(f"unknown model '{name}'{hint}; valid: {valid}")
    return _ENTRYPOINTS[name]
