"""The offline planner: protocol choices fitted to what the item shows and asks — never to its
label.

Topology, persona and tools vary per item (seeded by the item and the request's sampling seed),
weighted by what can be seen before deciding anything: an attack pattern in the question or the
picture is usually screened with a shield, text in the image brings OCR-EXTRACT, a question in a
risk domain often brings CONTEXT-ASSESSOR, and the decision tools on offer are drawn the same way
for every item. The label and category the plan reports are the source's annotation, but no
tool or topology choice reads them, so the system prompt rendered from the plan says nothing
about the decision to come (the audit's `label_from_prompt` measures it). Every answer satisfies
the builder's rules, so the offline build needs no retries; a retry (a request carrying
feedback) gets the most conservative plan.
"""

from __future__ import annotations

import random
from typing import Any

from safer_toolkit.builder.backends.offline_knowledge import DOMAINS
from safer_toolkit.builder.backends.offline_sight import Assessment, Sight
from safer_toolkit.validation.vocabulary import (
    CONTEXT,
    CROSS_MODAL,
    GATE,
    INTENT,
    KEYWORDS,
    LINEAR,
    MESH,
    OCR,
    PLANNER,
    REDIRECT,
    REFUSAL,
    RISK,
    SCAN,
    SENTINEL,
    SHIELD,
    TOPOLOGIES,
)

#: how often each topology is drawn, in `TOPOLOGIES` order (linear, tree, mesh, shield, loop)
_TOPOLOGY_WEIGHTS = (2, 2, 3, 1.5, 2)
_STYLES = ("concise and direct", "warm and reassuring", "methodical, step by step",
           "plain-spoken and practical", "careful and evidence-first")


def _persona(assessment: Assessment, rng: random.Random) -> dict[str, str]:
    name, expertise, style = rng.choice(DOMAINS[assessment.category].personas)
    if rng.random() < 0.3:
        style = rng.choice(_STYLES)
    return {"name": name, "style": style, "expertise": expertise}


def _decision_tools(topology: str, rng: random.Random) -> list[str]:
    """SAFETY-GATE plus follow-ups for either decision, drawn alike for every item: a planner
    that offered only one side's follow-up would decide in advance (and a trace could carry its
    decision out only one way). A linear chain visits every tool, so it gets the gate alone."""
    if topology == LINEAR:
        return [GATE]
    decline = [t for t in (REDIRECT, REFUSAL) if rng.random() < 0.6]
    return [GATE, *(decline or [rng.choice((REFUSAL, REDIRECT))]), PLANNER]


def plan_choices(assessment: Assessment, sight: Sight, rng: random.Random) -> dict[str, Any]:
    """The planner's structured answer for one item."""
    attack = assessment.attack != "none"
    if attack and rng.random() < 0.45:
        topology = SHIELD
    else:
        topology = rng.choices(TOPOLOGIES, weights=_TOPOLOGY_WEIGHTS)[0]
    perception = [SCAN]
    if sight.text or rng.random() < 0.3:
        perception.insert(0 if sight.text and rng.random() < 0.5 else 1, OCR)
    if rng.random() < 0.5 or (topology == SHIELD and not attack):
        perception.append(KEYWORDS)
    if rng.random() < 0.4:
        perception.append(CROSS_MODAL)
    reasoning = [INTENT]
    if attack or rng.random() < 0.25 or (topology == SHIELD and KEYWORDS not in perception):
        reasoning.insert(0, SENTINEL)
    if rng.random() < 0.8:
        reasoning.append(RISK)
    risk_domain = assessment.category != "benign"  # harmful requests and look-alikes alike
    if rng.random() < (0.4 if risk_domain else 0.15):
        reasoning.append(CONTEXT)
    decision = _decision_tools(topology, rng)
    limit = 8 if topology == LINEAR else 9
    for optional in (CROSS_MODAL, CONTEXT, REDIRECT, RISK, KEYWORDS, OCR):
        if len(perception) + len(reasoning) + len(decision) <= limit:
            break
        for stage in (perception, reasoning, decision):
            if optional in stage and len(stage) > 1 and not (
                    optional == KEYWORDS and topology == SHIELD) and not (
                    optional == REDIRECT and REFUSAL not in stage):
                stage.remove(optional)
    shield_tool = None
    if topology == SHIELD:
        shield_tool = SENTINEL if SENTINEL in reasoning else KEYWORDS
        if shield_tool == KEYWORDS and len(perception) == 1 and rng.random() < 0.5:
            perception.append(CROSS_MODAL)
    return {"persona": _persona(assessment, rng), "risk_category": assessment.category,
            "label": assessment.label, "topology": topology,
            "tools": perception + reasoning + decision, "shield_tool": shield_tool,
            "custom_tools": []}


def conservative_choices(assessment: Assessment, rng: random.Random) -> dict[str, Any]:
    """A plan that satisfies every rule: a mesh over the core tools (both follow-ups, so the
    plan still decides nothing)."""
    return {"persona": _persona(assessment, rng), "risk_category": assessment.category,
            "label": assessment.label, "topology": MESH,
            "tools": [SCAN, INTENT, RISK, GATE, REFUSAL, PLANNER],
            "shield_tool": None, "custom_tools": []}
