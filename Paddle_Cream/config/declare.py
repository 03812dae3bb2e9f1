"""The kinds of config declaration: a key's default and what it accepts, checked in one line.

Each declaration converts a value read from YAML or the command line (``'5'`` for an integer, ``'true'``
for a flag, as the official configs write them) and refuses what it does not accept with a
:class:`ConfigError` naming the key, the value and what is allowed.
"""
import math
import re
import reprlib
from dataclasses import dataclass, field
from typing import Any, Callable, FrozenSet, Optional, Tuple

__all__ = ['ConfigError', 'Decl', 'Bool', 'Int', 'Float', 'Choice', 'Text', 'ListOf', 'Maybe', 'name', 'path',
           'check_value', 'short_repr', 'fixed']

MAX_TEXT = 4096       # characters of a string value (a path; PATH_MAX on Linux)
NAME_PATTERN = r'[A-Za-z0-9._-]+'
NONE_WORDS = ('', 'None', 'none', 'null')   # the official configs write an unset number as the string 'None'


class ConfigError(ValueError):
    """A config file or override is invalid (one-line message)."""


class Refused(Exception):
    """Raised by a declaration: the value does not fit; ``detail`` says which part or why, when useful."""

    def __init__(self, detail: str = ''):
        super().__init__(detail)
        self.detail = detail


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` of at most ``limit`` characters; containers are abbreviated level by level
    (``reprlib``), so a huge refused value is never walked whole."""
    r = reprlib.Repr()
    r.maxlist = r.maxtuple = r.maxdict = 10
    r.maxlevel, r.maxstring, r.maxother = 3, limit, limit
    text = r.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def check_value(key: str, decl: 'Decl', value: Any) -> Any:
    """``value`` converted by ``decl``, or ConfigError: ``config key K must be <allowed>, got <value>``."""
    try:
        return decl.convert(value)
    except Refused as e:
        why = f' ({e.detail})' if e.detail else ''
        raise ConfigError(f'config key {key} must be {decl.describe()}, got {short_repr(value)}{why}') from None


class Decl:
    """One key: ``default``, ``convert(value)`` (raises :class:`Refused`) and ``describe()`` (what it accepts);
    ``fixed_on_resume``: the modes whose checkpoints fix the key's value (see :func:`fixed`)."""

    default: Any
    fixed_on_resume: FrozenSet[str] = frozenset()

    def convert(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def fixed(decl: 'Decl', *modes: str) -> 'Decl':
    """``decl``, marked as fixed by a checkpoint of ``modes``: resuming one with another value is refused,
    where a key not marked may change on resume (the run logs it)."""
    object.__setattr__(decl, 'fixed_on_resume', frozenset(modes))   # the kinds are frozen dataclasses
    return decl


def _range_text(lo, hi, lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> str:
    lo, hi = (x if x is None or isinstance(x, int) else f'{x:g}' for x in (lo, hi))
    if lo is not None and hi is not None:
        if integer:
            return f'in {lo}..{hi}'
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return ''


def _in_range(x, lo, hi, lo_open: bool = False, hi_open: bool = False) -> bool:
    if lo is not None and (x < lo or (lo_open and x == lo)):
        return False
    return hi is None or not (x > hi or (hi_open and x == hi))


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise Refused()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise Refused()
    if isinstance(value, str) and len(value) <= 30:
        try:
            return int(value.strip())
        except ValueError:
            raise Refused() from None
    raise Refused()


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Refused()
    if isinstance(value, str) and len(value) > 40:
        raise Refused()
    try:
        x = float(value)     # YAML reads 1e-4 (no dot) as a string: float() takes it
    except (ValueError, OverflowError):
        raise Refused() from None
    if not math.isfinite(x):
        raise Refused('not finite')
    return x


def _to_text(value: Any) -> str:
    if value is None:
        return ''
    if isinstance(value, (list, tuple, dict, set, bytes)):
        raise Refused()
    return str(value)


@dataclass(frozen=True)
class Bool(Decl):
    """True or False (also the strings 'true' / 'false', any case)."""
    default: bool

    def convert(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
            return value.strip().lower() == 'true'
        raise Refused()

    def describe(self) -> str:
        return 'True or False'


@dataclass(frozen=True)
class Int(Decl):
    """A whole number in ``[min, max]`` (either bound optional); ``also``: values accepted outside it."""
    default: int
    min: Optional[int] = None
    max: Optional[int] = None
    also: Tuple[Tuple[int, str], ...] = ()      # ((0, "the model's own size"),)

    def convert(self, value: Any) -> int:
        n = _to_int(value)
        if any(n == v for v, _ in self.also) or _in_range(n, self.min, self.max):
            return n
        raise Refused()

    def describe(self) -> str:
        text = f'an integer {_range_text(self.min, self.max, integer=True)}'.rstrip()
        extra = ' or '.join(f'{v} ({what})' for v, what in self.also)
        return f'{extra} or {text}' if extra else text


@dataclass(frozen=True)
class Float(Decl):
    """A finite number in a range whose ends may be open (``min_open``: strictly above ``min``)."""
    default: float
    min: Optional[float] = None
    max: Optional[float] = None
    min_open: bool = False
    max_open: bool = False

    def convert(self, value: Any) -> float:
        x = _to_float(value)
        if _in_range(x, self.min, self.max, self.min_open, self.max_open):
            return x
        raise Refused()

    def describe(self) -> str:
        return f'a finite number {_range_text(self.min, self.max, self.min_open, self.max_open)}'.rstrip()


@dataclass(frozen=True)
class Choice(Decl):
    """One of ``choices`` (of the default's type); ``ignore_case`` stores the value in lower case."""
    default: Any
    choices: Tuple[Any, ...]
    ignore_case: bool = False

    def convert(self, value: Any) -> Any:
        if isinstance(self.default, int):
            v = _to_int(value)
        else:
            v = _to_text(value)
            if len(v) > MAX_TEXT:
                raise Refused()
            v = v.lower() if self.ignore_case else v
        if v in self.choices:
            return v
        raise Refused()

    def describe(self) -> str:
        return 'one of ' + ', '.join(repr(c) if c == '' else str(c) for c in self.choices)


@dataclass(frozen=True)
class Text(Decl):
    """A string of at most ``max_len`` characters matching ``pattern`` (whole), none of ``forbid``;
    ``check(text)`` raises ValueError (its message shown) for what a pattern cannot say."""
    default: str
    what: str = 'a string'
    pattern: Optional[str] = None
    forbid: Tuple[str, ...] = ()
    empty: bool = True
    max_len: int = MAX_TEXT
    check: Optional[Callable[[str], Any]] = field(default=None, compare=False)

    def convert(self, value: Any) -> str:
        text = _to_text(value)
        if len(text) > self.max_len:
            raise Refused(f'longer than {self.max_len} characters')
        if text == '':
            if self.empty:
                return text
            raise Refused()
        if text in self.forbid or (self.pattern and not re.fullmatch(self.pattern, text)):
            raise Refused()
        if self.check is not None:
            try:
                self.check(text)
            except ValueError as e:
                raise Refused(str(e).splitlines()[0] if str(e) else '') from None
        return text

    def describe(self) -> str:
        return self.what


def name(default: str) -> Text:
    """A plain file name: it becomes a folder under another (``SAVE_PATH/<MMDD>-<MODEL>``), never a path."""
    return Text(default, what="a plain name of letters, digits, '.', '_' and '-' (no '/', not '.' or '..'), "
                               "at most 100 characters", pattern=NAME_PATTERN, forbid=('.', '..'), empty=False,
                max_len=100)


def _no_nul(text: str) -> None:
    if '\x00' in text:
        raise ValueError('it holds a NUL character')


def path(default: str, empty: bool = True) -> Text:
    """A file or folder path (``empty``: '' allowed, meaning none)."""
    return Text(default, what="a path or '' (none)" if empty else 'a non-empty path', empty=empty, check=_no_nul)


@dataclass(frozen=True)
class ListOf(Decl):
    """A list of ``min_len``..``max_len`` items, each accepted by ``item``; ``rule`` = (test of the
    converted list, what it requires). The length is checked before any item is looked at."""
    default: list
    item: Decl
    min_len: int
    max_len: int
    what: str
    rule: Optional[Tuple[Callable[[list], bool], str]] = field(default=None, compare=False)

    def convert(self, value: Any) -> list:
        if not isinstance(value, (list, tuple)):
            raise Refused()
        if not self.min_len <= len(value) <= self.max_len:
            raise Refused(f"{len(value)} item{'' if len(value) == 1 else 's'}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(self.item.convert(v))
            except Refused as e:
                raise Refused(f'item {i} is {short_repr(v, 40)}' + (f': {e.detail}' if e.detail else '')) from None
        if self.rule is not None and not self.rule[0](out):
            raise Refused(f'it must have {self.rule[1]}')
        return out

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Maybe(Decl):
    """Unset (None, '' or the string 'None', stored as None) or a value one of ``options`` accepts."""
    options: Tuple[Decl, ...]
    default: None = None

    def convert(self, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip() in NONE_WORDS):
            return None
        for option in self.options:
            try:
                return option.convert(value)
            except Refused:
                continue
        raise Refused()

    def describe(self) -> str:
        return 'None or ' + ' or '.join(o.describe() for o in self.options)
