"""Config fields declared once, read by one reader.

`setting(default, low=, high=, help=...)` on a config dataclass (TRL's config dataclasses,
`field(metadata={"help": ...})`, are the model) holds a setting's default, bounds, choices, TOML
key and help; `Reader` reads a TOML file or table into such a dataclass by those declarations
and the field types — build configs, the audit's bounds and training configs alike — so every
error reads the same way: `ORIGIN: KEY.PATH: what was expected`. Standard library only: configs
are read before anything heavy is imported.
"""

from __future__ import annotations

import functools
import math
import tomllib
import types
import typing
from collections.abc import Callable, Collection, Mapping, Set
from dataclasses import MISSING, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: How a field is read where its type alone does not say: `read(reader, value, key)`.
ReadFn = Callable[["Reader", Any, str], Any]


def setting(default: Any = MISSING, *, factory: Any = MISSING, low: float | None = None,
            high: float | None = None, choices: tuple[str, ...] = (), read: ReadFn | None = None,
            key: str = "", help: str = "") -> Any:
    """A config field declared once: its default, its bounds (`low`/`high`), its `choices`,
    how to read it where its type alone does not say (`read(reader, value, key)`), its TOML key
    where that is not its name (`key`, dotted one table deep) and its `help` (TRL's
    `field(metadata={"help": ...})`). `Reader`, a config's overrides and its help all read it
    from here."""
    metadata = {"low": low, "high": high, "choices": choices, "read": read, "key": key,
                "help": help}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def defaults(cls: type) -> dict[str, Any]:
    """A config dataclass's field defaults (factories called): each default is written once, on
    the dataclass, and the reader fills what a file leaves out from here."""
    found: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not MISSING:
            found[f.name] = f.default
        elif f.default_factory is not MISSING:
            found[f.name] = f.default_factory()
    return found


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's table; raises `ConfigError` naming the file when it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(hint: Any) -> str:
    """What a value of type `hint` is called in TOML, for an error message."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_kind(h) for h in typing.get_args(hint) if h is not type(None))
    hint = typing.get_origin(hint) or hint
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             list: "an array", tuple: "an array"}
    return names.get(hint, "a table" if hint in (dict, Mapping) else f"a {hint.__name__}")


def _accepts(hint: Any, value: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_accepts(h, value) for h in typing.get_args(hint))
    if origin is not None:
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


class Reader:
    """Reads values of one origin (a file, a preset, the command line) against their
    declarations; every problem is a `ConfigError` worded `ORIGIN: KEY: must be …`."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {key or '(top level)'}: {message}")

    def table(self, data: Any, key: str, allowed: Set[str]) -> dict[str, Any]:
        """`data` as a table holding only `allowed` keys (absent: empty)."""
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, "must be a table")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.fail(key, f"unknown key(s) {', '.join(unknown)}; "
                                 f"expected {', '.join(sorted(allowed))}")
        return data

    def integer(self, value: Any, key: str, low: float | None = None,
                high: float | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, f"must be an integer, not {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(key, f"must be between {low} and {high}" if high is not None
                            else f"must be at least {low}" if low is not None
                            else f"must be at most {high}")
        return value

    def number(self, value: Any, key: str, low: float | None = None,
               high: float | None = None) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or \
                not -math.inf < value < math.inf or (low is not None and value < low) or \
                (high is not None and value > high):  # TOML has inf and nan
            bounds = f" between {low:g} and {high:g}" if low is not None and high is not None \
                else f" ≥ {low}" if low is not None else f" ≤ {high}" if high is not None else ""
            raise self.fail(key, f"must be a number{bounds}, not {value!r}")
        return float(value)

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {value!r}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {value!r}")
        return value

    def choice(self, value: Any, key: str, choices: Collection[str]) -> str:
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def value(self, cls: type, name: str, value: Any, key: str) -> Any:
        """`value` of field `name` of config dataclass `cls`, checked as declared there: its
        `read`, else its `choices`, else its type (a dataclass read as a table, recursively)
        within its bounds."""
        f = next(f for f in fields(cls) if f.name == name)
        m, hint = f.metadata, _hints(cls)[name]
        if m.get("read"):
            return m["read"](self, value, key)
        if m.get("choices"):
            return self.choice(value, key, m["choices"])
        if isinstance(hint, type) and is_dataclass(hint):
            return self.dataclass(hint, value, key)
        if hint in (int, float):
            read = self.integer if hint is int else self.number
            return read(value, key, m.get("low"), m.get("high"))
        if typing.get_origin(hint) in (dict, Mapping):
            if not isinstance(value, dict):
                raise self.fail(key, "must be a table")
            return dict(value)
        if not _accepts(hint, value):
            raise self.fail(key, f"must be {_kind(hint)}, not {value!r}")
        return value

    def values(self, cls: type, data: Any, key: str = "", *, skip: Collection[str] = (),
               extra: Collection[str] = ()) -> dict[str, Any]:
        """The fields of config dataclass `cls` that table `data` (at `key`) gives, each read
        by `value` under its TOML key; an unknown key or a missing required field is an error.
        `skip`: fields the caller reads itself; `extra`: keys (dotted one table deep) it allows
        for its own use."""
        declared = [f for f in fields(cls) if f.init and f.name not in skip]
        paths = {f.name: f.metadata.get("key") or f.name for f in declared}
        leaves: dict[str, set[str]] = {}
        for path in [*paths.values(), *extra]:
            head, dot, leaf = path.partition(".")
            leaves.setdefault(head if dot else "", set()).add(leaf if dot else head)
        top = self.table(data, key, leaves.pop("", set()) | set(leaves))
        tables = {"": top} | {head: self.table(top.get(head), _join(key, head), names)
                              for head, names in leaves.items()}
        found: dict[str, Any] = {}
        for f in declared:
            head, _, leaf = paths[f.name].rpartition(".")
            if leaf in tables[head]:
                found[f.name] = self.value(cls, f.name, tables[head][leaf],
                                           _join(key, paths[f.name]))
            elif f.default is MISSING and f.default_factory is MISSING:
                help_text = f.metadata.get("help")
                raise self.fail(_join(key, head), f"needs `{leaf}`"
                                + (f" ({help_text})" if help_text else ""))
        return found

    def dataclass(self, cls: type, data: Any, key: str = "") -> Any:
        """Config dataclass `cls` from table `data` (at `key`): what it leaves out keeps the
        field's default."""
        return cls(**self.values(cls, data, key))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
