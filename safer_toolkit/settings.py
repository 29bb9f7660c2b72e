"""Config fields declared once: `setting(default, low=, high=, help=...)` on a config
dataclass (TRL's config dataclasses, `field(metadata={"help": ...})`, are the model) holds a
setting's default, bounds, choices, TOML key and help, so a reader, the command-line overrides
and the help text read one declaration instead of each naming the key again. Standard library
only: configs are read before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import MISSING, field, fields
from typing import Any


def setting(default: Any = MISSING, *, factory: Any = MISSING, low: float | None = None,
            high: float | None = None, choices: tuple[str, ...] = (), read: str = "",
            key: str = "", help: str = "") -> Any:
    """A config field declared once: its default, its bounds (`low`/`high`), its `choices`,
    the reader's method for it where its type alone does not say how to read it (`read`), its TOML
    key where that is not its name (`key`, dotted into a table) and its `help` (TRL's
    `field(metadata={"help": ...})`). A config's reader, its overrides and its help all read
    it from here."""
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
