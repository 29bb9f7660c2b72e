"""Prompt templates (package data, versioned by hash) and the renderers built on them."""

from .instruction import (
    parse_toolkit_instruction,
    render_toolkit_instruction,
)
from .planner import render_planner_system
from .templates import template, template_versions

__all__ = [
    "parse_toolkit_instruction",
    "render_planner_system",
    "render_toolkit_instruction",
    "template",
    "template_versions",
]
