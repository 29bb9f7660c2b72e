"""Prompt templates (package data, versioned by hash) and the renderers built on them."""

from safer_toolkit.builder.prompts.instruction import (
    parse_toolkit_instruction,
    render_toolkit_instruction,
    signature,
)
from safer_toolkit.builder.prompts.planner import render_planner_system
from safer_toolkit.builder.prompts.templates import PromptTemplate, template, template_versions

__all__ = [
    "PromptTemplate",
    "parse_toolkit_instruction",
    "render_planner_system",
    "render_toolkit_instruction",
    "signature",
    "template",
    "template_versions",
]
