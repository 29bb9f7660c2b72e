"""The planner's system prompt: the tool library, topologies and taxonomy it chooses from."""

from __future__ import annotations

from functools import cache

from ... import schemas
from ...validation import library_tools
from .templates import template

MIN_TOOLS, MAX_TOOLS, MAX_CUSTOM_TOOLS = 4, 10, 2


@cache
def render_planner_system(max_calls: int) -> str:
    """The planner's system prompt (fixed for a library, so rendered once)."""
    library = "\n".join(f"- {t.name} [{t.stage}]: {t.purpose}" for t in library_tools().values())
    descriptions = schemas.taxonomy()["descriptions"]
    categories = "\n".join(f"- {c}: {descriptions[c]}" for c in schemas.risk_categories())
    return template("planner").render(library=library, categories=categories,
                                      min_tools=MIN_TOOLS, max_tools=MAX_TOOLS,
                                      max_calls=max_calls, max_custom=MAX_CUSTOM_TOOLS)
