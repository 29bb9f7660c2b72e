"""The protocol's vocabulary, read once from the shipped schema files: its version, stages,
topologies, tools, verdicts and follow-up tools, and the judges' score ranges.

Every module that names a tool, a stage, a topology or a verdict takes it from here, so the
schema files stay the one source: a tool renamed in `tool_library_v1.json` fails at import
below instead of silently missing a literal elsewhere. A module that needs a library tool for
what it does (the decision gate, the refusal tool) imports it by that role.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from .. import schemas


def _enum(schema: dict[str, Any], key: str) -> tuple[str, ...]:
    return tuple(schema["properties"][key]["enum"])


_PROTOCOL = schemas.load("protocol.schema.json")
_LIBRARY = schemas.tool_library()

#: The `protocol_version` every protocol document carries (protocol.schema.json's const).
PROTOCOL_VERSION: str = _PROTOCOL["properties"]["protocol_version"]["const"]
#: A tool's stages, in walk order (tool.schema.json).
STAGES: tuple[str, ...] = _enum(schemas.load("tool.schema.json"), "stage")
PERCEPTION, REASONING, DECISION = "perception", "reasoning", "decision"
if STAGES != (PERCEPTION, REASONING, DECISION):
    raise ImportError("the stage names in safer_toolkit.validation.vocabulary do not match "
                      "schemas/tool.schema.json")
#: The topology whose graph a protocol gives itself instead of having it compiled.
CUSTOM_TOPOLOGY = "custom"
#: The topologies the builder compiles a graph for (protocol.schema.json, less `custom`).
TOPOLOGIES: tuple[str, ...] = tuple(t for t in _enum(_PROTOCOL, "topology")
                                    if t != CUSTOM_TOPOLOGY)
# Topologies by name, for the code that compiles or walks each one (checked against the schema).
LINEAR, TREE, MESH, SHIELD, LOOP = "linear", "tree", "mesh", "shield", "loop"
if _enum(_PROTOCOL, "topology") != (LINEAR, TREE, MESH, SHIELD, LOOP, CUSTOM_TOPOLOGY):
    raise ImportError("the topology names in safer_toolkit.validation.vocabulary do not match "
                      "schemas/protocol.schema.json")
#: Library tool name → its stage, in library order.
TOOL_STAGES: MappingProxyType[str, str] = MappingProxyType(
    {t["name"]: t["stage"] for t in _LIBRARY["tools"]})
TOOLS: tuple[str, ...] = tuple(TOOL_STAGES)

# Library tools by role. These are the only tool-name literals outside the schema files.
# perception
SCAN = "VISUAL-SCAN"  # objects, scene, hazards in the image
OCR = "OCR-EXTRACT"  # text rendered in the image
KEYWORDS = "KEYWORD-FLAGGING"  # risk-bearing keywords
CROSS_MODAL = "CROSS-MODAL-SYNC"  # image ↔ question relation
# reasoning
INTENT = "INTENT-RADAR"  # the intent the analysis finds (docs/protocol.md §4 reads it)
RISK = "RISK-SCORER"  # risk category and severity (docs/protocol.md §4 reads the severity)
SENTINEL = "JAILBREAK-SENTINEL"  # attack patterns: the library's shield tool
CONTEXT = "CONTEXT-ASSESSOR"  # legitimate-use context
# decision
GATE = "SAFETY-GATE"  # states the verdict
REDIRECT = "REDIRECT-ENGINE"  # carries out `redirect`
REFUSAL = "REFUSAL-GENERATOR"  # carries out `refuse`
PLANNER = "RESPONSE-PLANNER"  # carries out compliance

_ROLES = {SCAN: PERCEPTION, OCR: PERCEPTION, KEYWORDS: PERCEPTION, CROSS_MODAL: PERCEPTION,
          INTENT: REASONING, RISK: REASONING, SENTINEL: REASONING, CONTEXT: REASONING,
          GATE: DECISION, REDIRECT: DECISION, REFUSAL: DECISION, PLANNER: DECISION}
if dict(TOOL_STAGES) != _ROLES:
    raise ImportError("the tool roles in safer_toolkit.validation.vocabulary do not match "
                      "schemas/tool_library_v1.json (names or stages)")

#: The SAFETY-GATE verdicts, as the tool library defines them.
VERDICTS: tuple[str, ...] = _enum(
    next(t for t in _LIBRARY["tools"] if t["name"] == GATE)["output"], "verdict")
#: Verdict → the decision tools that carry it out, preferred first.
FOLLOW_UP: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "refuse": (REFUSAL, REDIRECT), "redirect": (REDIRECT, REFUSAL),
    "comply": (PLANNER,), "comply_with_caution": (PLANNER,)})
if set(FOLLOW_UP) != set(VERDICTS):
    raise ImportError("FOLLOW_UP must name follow-up tools for exactly the SAFETY-GATE verdicts")
#: The verdicts that decline the request (the rest comply).
DECLINING: frozenset[str] = frozenset({"refuse", "redirect"})
if not DECLINING.issubset(VERDICTS):
    raise ImportError("DECLINING must name SAFETY-GATE verdicts")
#: Follow-up tool → the verdict it implies when no gate states one (its first verdict).
FOLLOW_UP_DECISION: MappingProxyType[str, str] = MappingProxyType(
    {tools[0]: verdict for verdict, tools in reversed(list(FOLLOW_UP.items()))})

#: The builder's judge rubric: score → (lowest, highest).
JUDGE_RUBRIC: MappingProxyType[str, tuple[int, int]] = MappingProxyType(
    {"safety": (-3, 3), "helpfulness": (0, 3), "rigor": (0, 3)})
#: The GRPO semantic judge's scores: overall task score, safety, helpfulness, tool
#: quality → (lowest, highest).
SEMANTIC_SCORE_RANGES: MappingProxyType[str, tuple[int, int]] = MappingProxyType(
    {k: (1, 10) for k in ("ts", "sf", "hp", "tq")})
