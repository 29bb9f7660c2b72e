"""API keys: named by an environment variable, never written, never partly written.

A key reaches the toolkit only through the environment variable a config or flag *names*, so
the name is checked to be one (a pasted key would otherwise be written into manifests, run
records and results as a "name"). Error text that a server may have echoed the key into is
masked before it is cut to length: cutting first could keep the key's first characters.
"""

from __future__ import annotations

import re

#: What an environment variable name looks like (POSIX: letters, digits, underscores).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MASK = "***"


def _looks_like_a_key(name: str) -> bool:
    """Random-looking: upper- and lower-case letters and digits mixed (`hf_AbC123…`); names
    such as OPENAI_API_KEY or my_key2 are not."""
    return (any(c.islower() for c in name) and any(c.isupper() for c in name)
            and any(c.isdigit() for c in name) and len(name) >= 16)


def key_env_problem(name: str) -> str | None:
    """Why `name` cannot be the name of the variable that holds a key, else None."""
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        return ("must be the NAME of an environment variable (letters, digits and underscores, "
                "not starting with a digit, at most 64), e.g. OPENAI_API_KEY — not a key")
    if _looks_like_a_key(name):
        return ("looks like an API key, not the name of the variable holding it; export it "
                "(`export MY_API_KEY=...`) and pass MY_API_KEY")
    return None


def mask_key(text: str, key: str | None, limit: int | None = None) -> str:
    """`text` with every occurrence of `key` masked, then cut to `limit` characters."""
    if key:
        text = text.replace(key, MASK)
    return text if limit is None else text[:limit]
