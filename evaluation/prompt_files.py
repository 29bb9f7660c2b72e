"""Prompt text from a user's file: a text file, or a string constant in a Python file.

`--rubric` and `--system-prompt-file` take the authors' own files from a user's checkout of
their code (the project ships none of their text): their evaluation rubric is the string
`system_prompt` in `eval/utils/eval_prompt.py`, their inference prompt `SYSTEM_PROMPT_THINKING`
in `eval/utils/prompts.py`. A `.py` file is parsed, never run: the module-level assignment of a
string literal named after the colon (`FILE.py:NAME`), or the only such assignment. Whatever
the file, the text is used exactly as it stands.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..errors import EvaluationError

MAX_PROMPT_BYTES = 256 * 1024


class PromptFileError(EvaluationError, ValueError):
    """The file cannot give a prompt (the message names the file and why)."""


def _split(spec: str) -> tuple[Path, str | None]:
    """`FILE` or `FILE.py:NAME` (a colon in a path that is not a `.py:NAME` stays part of it)."""
    head, sep, name = spec.rpartition(":")
    if sep and head.endswith(".py") and name.isidentifier():
        return Path(head), name
    return Path(spec), None


def _constants(source: str, path: Path) -> dict[str, str]:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise PromptFileError(f"{path}: not Python ({exc.msg}, line {exc.lineno})") from None
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if (isinstance(target, ast.Name) and isinstance(value, ast.Constant)
                and isinstance(value.value, str)):
            found[target.id] = value.value
    return found


def read_prompt_file(spec: str | Path) -> tuple[str, str]:
    """(text, what it is called in provenance: `FILE` or `FILE:NAME`); raises
    `PromptFileError`."""
    path, name = _split(str(spec))
    try:
        size = path.stat().st_size
        if size > MAX_PROMPT_BYTES:
            raise PromptFileError(f"{path}: {size} bytes; a prompt file is at most "
                                  f"{MAX_PROMPT_BYTES}")
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptFileError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PromptFileError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if path.suffix != ".py":
        if name is not None:
            raise PromptFileError(f"{spec}: `:NAME` picks a string in a .py file")
        text, called = source, path.name
    else:
        constants = _constants(source, path)
        if name is None:
            if len(constants) != 1:
                listed = ", ".join(sorted(constants)) or "none"
                raise PromptFileError(f"{path}: name the string to use as {path}:NAME "
                                      f"(module-level strings: {listed})")
            name = next(iter(constants))
        if name not in constants:
            raise PromptFileError(f"{path}: no module-level string named {name!r}")
        text, called = constants[name], f"{path.name}:{name}"
    if not text.strip():
        raise PromptFileError(f"{spec}: the prompt is empty")
    return text, called
